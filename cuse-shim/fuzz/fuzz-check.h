/*
 * What the libFuzzer harnesses share: FUZZ_CHECK, an invariant whose failure is a crash libFuzzer
 * reports (with the input that caused it, saved as crash-*).
 */
#ifndef TAPEPROXY_FUZZ_CHECK_H
#define TAPEPROXY_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond)                                                                          \
	do {                                                                                      \
		if (!(cond)) {                                                                    \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                                  \
		}                                                                                 \
	} while (0)

#endif
