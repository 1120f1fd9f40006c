/// A CHANNEL_HANGUP as FreeSWITCH 1.10.12 sent it on this machine: `event plain`, the inbound SIP
/// leg of an answered call (the e2e scenario `channel_limit_ip`), read off its event socket as is.
/// 6,464 bytes in 154 lines, the Unique-ID on the 18th: what the service's listener reads for every
/// call that ends. The benchmark's hangup feed sends it for each call (`HangupFeed`), with the
/// call's Unique-ID and the feed's Core-UUID in place of the captured ones; an event of three lines
/// cost the listener less than a switch's does.
enum ChannelHangup {
    static let capturedUniqueID = "d01323ab-54ed-47d2-9444-c5e24dd2cf75"
    static let capturedCoreUUID = "f4e70cfd-b304-4272-a498-0dab50c2abc2"

    /// The event of the call `uniqueID` on the switch run `coreUUID`, framed as mod_event_socket
    /// frames it (its `Content-Length` header first, as the switch writes it).
    struct Template {
        /// The body split at each of the captured Unique-ID's places.
        private let parts: [String]

        init(coreUUID: String) {
            parts = ChannelHangup.body.replacingOccurrences(of: ChannelHangup.capturedCoreUUID, with: coreUUID)
                .components(separatedBy: ChannelHangup.capturedUniqueID)
        }

        func event(uniqueID: String) -> String {
            let body = parts.joined(separator: uniqueID)
            return "Content-Length: \(body.utf8.count)\nContent-Type: text/event-plain\n\n" + body
        }

        /// `event(uniqueID:)` appended to `out` as bytes (the feed reuses one buffer: a String
        /// grown to megabytes every 20 ms cost the feed more than the service's listener).
        func append(uniqueID: String, to out: inout [UInt8]) {
            let length = parts.reduce(0) { $0 + $1.utf8.count } + (parts.count - 1) * uniqueID.utf8.count
            out.append(contentsOf: "Content-Length: \(length)\nContent-Type: text/event-plain\n\n".utf8)
            for (i, part) in parts.enumerated() {
                if i > 0 { out.append(contentsOf: uniqueID.utf8) }
                out.append(contentsOf: part.utf8)
            }
        }
    }

    static let body = #"""
Event-Name: CHANNEL_HANGUP
Core-UUID: f4e70cfd-b304-4272-a498-0dab50c2abc2
FreeSWITCH-Hostname: vm
FreeSWITCH-Switchname: vm
FreeSWITCH-IPv4: 192.0.2.2
FreeSWITCH-IPv6: fd00%3A%3A2
Event-Date-Local: 2026-12-07%2015%3A58%3A33
Event-Date-GMT: Mon,%2007%20Dec%202026%2015%3A58%3A33%20GMT
Event-Date-Timestamp: 1796659113376609
Event-Calling-File: switch_channel.c
Event-Calling-Function: switch_channel_perform_hangup
Event-Calling-Line-Number: 3445
Event-Sequence: 487
Channel-State: CS_EXECUTE
Channel-Call-State: ACTIVE
Channel-State-Number: 10
Channel-Name: sofia/switchauth_ip/pbx%40voip.example.com
Unique-ID: d01323ab-54ed-47d2-9444-c5e24dd2cf75
Call-Direction: inbound
Presence-Call-Direction: inbound
Channel-HIT-Dialplan: true
Channel-Call-UUID: d01323ab-54ed-47d2-9444-c5e24dd2cf75
Answer-State: hangup
Hangup-Cause: NORMAL_CLEARING
Channel-Read-Codec-Name: PCMU
Channel-Read-Codec-Rate: 8000
Channel-Read-Codec-Bit-Rate: 64000
Channel-Write-Codec-Name: PCMU
Channel-Write-Codec-Rate: 8000
Channel-Write-Codec-Bit-Rate: 64000
Caller-Direction: inbound
Caller-Logical-Direction: inbound
Caller-Username: pbx
Caller-Dialplan: XML
Caller-Caller-ID-Name: pbx
Caller-Caller-ID-Number: pbx
Caller-Orig-Caller-ID-Name: pbx
Caller-Orig-Caller-ID-Number: pbx
Caller-Network-Addr: 127.0.0.24
Caller-ANI: pbx
Caller-Destination-Number: 5550001
Caller-Unique-ID: d01323ab-54ed-47d2-9444-c5e24dd2cf75
Caller-Source: mod_sofia
Caller-Transfer-Source: 1796659112%3A366dcd1a-474b-4f65-bb15-a846a9ffe88d%3Abl_xfer%3A5550001/switchauth_routing/XML
Caller-Context: switchauth_routing
Caller-RDNIS: 5550001
Caller-Channel-Name: sofia/switchauth_ip/pbx%40voip.example.com
Caller-Profile-Index: 2
Caller-Profile-Created-Time: 1796659112356612
Caller-Channel-Created-Time: 1796659112356612
Caller-Channel-Answered-Time: 1796659112377109
Caller-Channel-Progress-Time: 0
Caller-Channel-Progress-Media-Time: 0
Caller-Channel-Hangup-Time: 0
Caller-Channel-Transfer-Time: 0
Caller-Channel-Resurrect-Time: 0
Caller-Channel-Bridged-Time: 0
Caller-Channel-Last-Hold: 0
Caller-Channel-Hold-Accum: 0
Caller-Screen-Bit: true
Caller-Privacy-Hide-Name: false
Caller-Privacy-Hide-Number: false
variable_direction: inbound
variable_uuid: d01323ab-54ed-47d2-9444-c5e24dd2cf75
variable_session_id: 1
variable_sip_from_user: pbx
variable_sip_from_uri: pbx%40voip.example.com
variable_sip_from_host: voip.example.com
variable_video_media_flow: disabled
variable_text_media_flow: disabled
variable_channel_name: sofia/switchauth_ip/pbx%40voip.example.com
variable_sip_local_network_addr: 127.0.0.1
variable_sip_network_ip: 127.0.0.24
variable_sip_network_port: 38644
variable_sip_invite_stamp: 1796659112356612
variable_sip_received_ip: 127.0.0.24
variable_sip_received_port: 38644
variable_sip_via_protocol: udp
variable_sip_from_user_stripped: pbx
variable_sofia_profile_name: switchauth_ip
variable_sofia_profile_url: sip%3Amod_sofia%40127.0.0.1%3A5080
variable_recovery_profile_name: switchauth_ip
variable_sip_req_user: 5550001
variable_sip_req_uri: 5550001%40127.0.0.1
variable_sip_req_host: 127.0.0.1
variable_sip_to_user: 5550001
variable_sip_to_uri: 5550001%40127.0.0.1
variable_sip_to_host: 127.0.0.1
variable_sip_contact_user: pbx
variable_sip_contact_port: 38644
variable_sip_contact_uri: pbx%40127.0.0.24%3A38644
variable_sip_contact_host: 127.0.0.24
variable_sip_user_agent: switchauth-e2e
variable_sip_via_host: 127.0.0.24
variable_sip_via_port: 38644
variable_sip_via_rport: 38644
variable_switch_r_sdp: v%3D0%0D%0Ao%3De2e%201796659112%201796659112%20IN%20IP4%20127.0.0.24%0D%0As%3De2e%0D%0Ac%3DIN%20IP4%20127.0.0.24%0D%0At%3D0%200%0D%0Am%3Daudio%2055904%20RTP/AVP%200%20101%0D%0Aa%3Drtpmap%3A0%20PCMU/8000%0D%0Aa%3Drtpmap%3A101%20telephone-event/8000%0D%0Aa%3Dfmtp%3A101%200-16%0D%0A
variable_ep_codec_string: CORE_PCM_MODULE.PCMU%408000h%4020i%4064000b
variable_rtp_use_codec_string: OPUS,G722,PCMU,PCMA,H264,VP8
variable_remote_video_media_flow: inactive
variable_remote_text_media_flow: inactive
variable_remote_audio_media_flow: sendrecv
variable_audio_media_flow: sendrecv
variable_rtp_audio_recv_pt: 0
variable_rtp_use_codec_name: PCMU
variable_rtp_use_codec_rate: 8000
variable_rtp_use_codec_ptime: 20
variable_rtp_use_codec_channels: 1
variable_rtp_last_audio_codec_string: PCMU%408000h%4020i%401c
variable_read_codec: PCMU
variable_original_read_codec: PCMU
variable_read_rate: 8000
variable_original_read_rate: 8000
variable_write_codec: PCMU
variable_write_rate: 8000
variable_dtmf_type: rfc2833
variable_accountcode: 2004
variable_switchauth_account_id: 8
variable_switchauth_auth_method: ip
variable_switchauth_ip_setting_id: 7
variable_switchauth_reason: ok
variable_switchauth_slot: global
variable_max_forwards: 69
variable_transfer_history: 1796659112%3A366dcd1a-474b-4f65-bb15-a846a9ffe88d%3Abl_xfer%3A5550001/switchauth_routing/XML
variable_transfer_source: 1796659112%3A366dcd1a-474b-4f65-bb15-a846a9ffe88d%3Abl_xfer%3A5550001/switchauth_routing/XML
variable_DP_MATCH: ARRAY%3A%3A5550001%7C%3A5550001
variable_call_uuid: d01323ab-54ed-47d2-9444-c5e24dd2cf75
variable_sip_rh_X-E2E-Account: 2004
variable_sip_rh_X-E2E-Method: ip
variable_sip_rh_X-E2E-Destination: 5550001
variable_rtp_local_sdp_str: v%3D0%0D%0Ao%3DFreeSWITCH%201796633256%201796633257%20IN%20IP4%20127.0.0.1%0D%0As%3DFreeSWITCH%0D%0Ac%3DIN%20IP4%20127.0.0.1%0D%0At%3D0%200%0D%0Am%3Daudio%2025856%20RTP/AVP%200%20101%0D%0Aa%3Drtpmap%3A0%20PCMU/8000%0D%0Aa%3Drtpmap%3A101%20telephone-event/8000%0D%0Aa%3Dfmtp%3A101%200-15%0D%0Aa%3Dptime%3A20%0D%0Aa%3Dsendrecv%0D%0A
variable_local_media_ip: 127.0.0.1
variable_local_media_port: 25856
variable_advertised_media_ip: 127.0.0.1
variable_rtp_use_timer_name: soft
variable_rtp_use_pt: 0
variable_rtp_use_ssrc: 656455200
variable_rtp_2833_send_payload: 101
variable_rtp_2833_recv_payload: 101
variable_remote_media_ip: 127.0.0.24
variable_remote_media_port: 55904
variable_endpoint_disposition: ANSWER
variable_current_application: park
variable_sip_to_tag: KXS12U2NZr15a
variable_sip_from_tag: b0b47ef4bf
variable_sip_cseq: 1
variable_sip_call_id: da77a11c771842cfa966c351049d6415%40e2e
variable_sip_full_via: SIP/2.0/UDP%20127.0.0.24%3A38644%3Bbranch%3Dz9hG4bK78932f100eb7468a%3Brport%3D38644
variable_sip_full_from: %3Csip%3Apbx%40voip.example.com%3E%3Btag%3Db0b47ef4bf
variable_sip_full_to: %3Csip%3A5550001%40127.0.0.1%3E%3Btag%3DKXS12U2NZr15a
variable_sip_term_status: 200
variable_proto_specific_hangup_cause: sip%3A200
variable_sip_term_cause: 16
"""# + "\n\n"
}
