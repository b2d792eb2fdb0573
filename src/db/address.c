#include "db/db.h"

#include <arpa/inet.h>
#include <netdb.h>

int db_address_text(const struct addrinfo *res, char *out, size_t len)
{
    out[0] = '\0';
    /* IPv4 first: "localhost" often lists ::1 first while services listen on 127.0.0.1. */
    for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next)
        if (ai->ai_family == AF_INET) {
            res = ai;
            break;
        }
    if (res == NULL)
        return -1;
    const void *src = res->ai_family == AF_INET
                          ? (const void *)&((const struct sockaddr_in *)res->ai_addr)->sin_addr
                          : (const void *)&((const struct sockaddr_in6 *)res->ai_addr)->sin6_addr;
    return inet_ntop(res->ai_family, src, out, (socklen_t)len) != NULL ? 0 : -1;
}
