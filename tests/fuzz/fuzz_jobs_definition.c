/*
 * fuzz_jobs_definition.c — libFuzzer target for the job definition checks
 * of POST /batch-processing/…/jobs/{id}: the input is parsed as JSON (at
 * most 1 MiB, as the route allows) and handed to jobs_definition_check,
 * which must answer 0 or ERR_INVALID with a message, never crash.
 */
#include "base/base.h"
#include "jobs/jobs.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20))
        return 0;
    json_t *j = json_loadb((const char *)data, size, 0, NULL);
    if (!j)
        return 0;
    struct err e = ERR_INIT;
    int rc = jobs_definition_check(j, &e);
    if (rc != 0 && rc != ERR_INVALID)
        abort();
    if (rc < 0 && e.msg[0] == '\0')
        abort();
    json_decref(j);
    return 0;
}
