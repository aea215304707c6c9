/* main.c — subcommand dispatch (filled in by the server work). */
#include "base/base.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help")) {
        printf("usage: vbatch <serve|worker|workspace|...> [options]\n");
        return argc < 2 ? 2 : 0;
    }
    fprintf(stderr, "vbatch: unknown command '%s'\n", argv[1]);
    return 2;
}
