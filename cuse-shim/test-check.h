/*
 * CHECK for the C unit tests: a failed check is reported and counted, the test goes on, and
 * test_result() turns the count into the exit status.
 */
#ifndef TAPEPROXY_TEST_CHECK_H
#define TAPEPROXY_TEST_CHECK_H

#include <stdio.h>

extern int failures;

#define CHECK(cond)                                                                    \
	do {                                                                           \
		if (!(cond)) {                                                         \
			fprintf(stderr, "%s:%d: %s: FAILED %s\n", __FILE__, __LINE__,  \
				__func__, #cond);                                      \
			failures++;                                                    \
		}                                                                      \
	} while (0)

static inline int test_result(const char *name)
{
	if (failures) {
		fprintf(stderr, "%s: %d check(s) failed\n", name, failures);
		return 1;
	}
	printf("%s: all passed\n", name);
	return 0;
}

#endif
