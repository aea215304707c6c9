/* http_int.h — what router.c and server.c share inside the http module. */
#ifndef VBATCH_HTTP_INT_H
#define VBATCH_HTTP_INT_H

#include "http/http.h"

/* The pattern a route was added with ("/x/{id}"), for ops as returned by
 * http_router_match; valid as long as the router.  The request metrics
 * are labelled with it, never with the raw path (which carries ids). */
const char *http__route_template(const struct http_route_ops *ops);

#endif
