// Esteira's window onto libpq. libpq has no variadic calls Swift needs; the header is
// wrapped so the include path (/usr/include/postgresql, from pkg-config) stays in one place.
#ifndef ESTEIRA_CLIBPQ_SHIM_H
#define ESTEIRA_CLIBPQ_SHIM_H
#include <libpq-fe.h>
#include <poll.h>
#endif
