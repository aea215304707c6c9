/*
 * api/jobs.h — HTTP handlers of the Batch Processing API
 * (/batch-processing/v1/external/{workspace}/jobs…, COMPAT.md section 1).
 * api.c picks this header up by itself (__has_include) and calls
 * api_jobs_register from api_routes_register; ctx->jobs must point to the
 * running struct jobs (jobs/jobs.h), or be NULL (every route then answers
 * 503).
 */
#ifndef VBATCH_API_JOBS_H
#define VBATCH_API_JOBS_H

#include "api/api.h"

int api_jobs_register(struct http_router *r, struct api_ctx *ctx);

#endif
