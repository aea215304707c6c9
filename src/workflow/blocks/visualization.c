/*
 * blocks/visualization.c — the visualization block family (see wf_block.h for how
 * blocks are declared and run).  Empty table for now: the blocks of this
 * family are implemented by the family's owner against wf_block.h.
 */
#include "workflow/wf_block.h"

const struct wf_block *const wf_blocks_visualization[] = {
    NULL,
};
