/* How the integration tests drive a workload: it prints "ready", waits for a
 * line on stdin before the measured work, prints "done", then stays alive
 * until stdin closes, so that memobserve can read its residency. */
#ifndef WORKLOAD_PROTOCOL_H
#define WORKLOAD_PROTOCOL_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void wait_for_go(void)
{
	char line[64];

	printf("ready\n");
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		_exit(2);
}

static void hold_until_stdin_closes(void)
{
	char buffer[64];

	printf("done\n");
	fflush(stdout);
	while (read(0, buffer, sizeof(buffer)) > 0) {
	}
}

#endif
