/* The one code -> HTTP status table (api_http_status, src/api/api.c):
 * every layer below api/ returns codes, only this table picks statuses. */
#include "api/api.h"

#include <errno.h>

#include "t.h"

TEST(status_table)
{
    ASSERT_EQ(api_http_status(0), 200);
    ASSERT_EQ(api_http_status(ERR_PARSE), 400);
    ASSERT_EQ(api_http_status(ERR_INVALID), 400);
    /* a presented credential refused (signed URLs); api_auth answers 401 itself */
    ASSERT_EQ(api_http_status(ERR_AUTH), 403);
    ASSERT_EQ(api_http_status(ERR_NOTFOUND), 404);
    ASSERT_EQ(api_http_status(ERR_EXISTS), 409);
    ASSERT_EQ(api_http_status(ERR_LIMIT), 413);
    ASSERT_EQ(api_http_status(ERR_UNSUPPORTED), 415);
    ASSERT_EQ(api_http_status(ERR_AGAIN), 503);
    ASSERT_EQ(api_http_status(ERR_NOSPACE), 507);
    ASSERT_EQ(api_http_status(-ENOSPC), 507);
    ASSERT_EQ(api_http_status(-EDQUOT), 507);
    ASSERT_EQ(api_http_status(ERR_INTERNAL), 500);
    ASSERT_EQ(api_http_status(ERR_NOMEM), 500);
    ASSERT_EQ(api_http_status(-EIO), 500);
}

TEST_MAIN()
