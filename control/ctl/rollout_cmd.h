/*
 * control/ctl/rollout_cmd.h - flagshm-ctl's rollout commands
 * (rollout_cmd.c) and the SVG report (rollout_svg.c).
 */
#ifndef FLAGSHM_CTL_ROLLOUT_CMD_H
#define FLAGSHM_CTL_ROLLOUT_CMD_H

#include <jansson.h>
#include <stdio.h>

/* The rollout, stale and `token create --group` commands: their exit
 * status, or -1 when ARGV holds another command (main's parser takes it). */
int ctl_rollout_main(int argc, char **argv);

/* Draw VIEW (GET /api/v1/rollouts/FLAG?history=true) as a standalone SVG
 * document on F: the share served, the error rate and the p99 of
 * treatment and control over time, every decision marked. 0, or -1 when
 * writing failed. */
int ctl_rollout_svg(FILE *f, const json_t *view);

#endif
