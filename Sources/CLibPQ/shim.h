#ifndef SWITCHAUTH_CLIBPQ_SHIM_H
#define SWITCHAUTH_CLIBPQ_SHIM_H
#include <libpq-fe.h>
#endif
