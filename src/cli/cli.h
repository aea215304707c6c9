/*
 * cli — client commands of the vbatch binary: they speak vbatch's HTTP API
 * only (libcurl), like any remote client, and never open a data folder.
 *
 *   vbatch batch upload DIR|FILE… --batch ID    tar shards built in memory,
 *                                               parallel PUTs to signed URLs,
 *                                               resumable; videos one by one
 *   vbatch batch list | show ID | export ID     export: download and unpack
 *   vbatch job start|watch|list|logs|abort|restart
 *   vbatch workflow put|get|list
 *
 * Common options: --server URL (VBATCH_SERVER, default
 * http://127.0.0.1:8080), --api-key KEY (VBATCH_API_KEY), --workspace WS
 * (default: the key's workspace, from GET /?api_key=).  Exit status: 0
 * success, 1 a failure (the server's JSON error shown on one line on
 * stderr), 2 bad usage.  Results go to stdout, progress to stderr (a bar
 * on a terminal, plain lines otherwise).  docs/CLI.md is the user's guide.
 *
 * Files: client.c (options, HTTP, errors), upload.c, export.c, commands.c
 * (the rest).  Depends on base/ only.
 */
#ifndef VBATCH_CLI_H
#define VBATCH_CLI_H

/* Run client command group `group` ("batch", "job" or "workflow") with the
 * arguments after it (argv[0] is the subcommand).  Returns the exit status.
 * Not thread safe: call once, from main(). */
int cli_main(const char *group, int argc, char **argv);

#endif
