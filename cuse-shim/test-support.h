/*
 * What the C unit tests share: CHECK, and a fake daemon thread on a real Unix socket that records
 * each request and answers it as a policy says, once the test lets it.
 */
#ifndef TAPEPROXY_TEST_SUPPORT_H
#define TAPEPROXY_TEST_SUPPORT_H

#include "frames.h"
#include "test-check.h"

#include <pthread.h>
#include <stdio.h>


#define MAX_SEEN 256

/*
 * The reply to the n-th request (0-based): its arg and flags. A READ's reply carries arg bytes of
 * 0xab, an MTIOCGET's 48 zero bytes.
 */
typedef void (*policy_fn)(const struct frame_header *req, int n, int32_t *arg, uint16_t *flags);

struct fake {
	int fd;      /* the fake daemon's end */
	int shim_fd; /* the end for link_open */
	pthread_t reader, replier;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	policy_fn policy;
	int allowed;  /* replies the fake may send (a gate the test opens) */
	int seen;
	int ended;    /* the shim side closed */
	int bad_id;   /* answer with a wrong id */
	int hang_up;  /* close the connection instead of answering */
	struct frame_header req[MAX_SEEN];
};

/* A connected socket pair: link_open(f->shim_fd, ...), then fake_serve. */
void fake_start(struct fake *f, policy_fn policy, int allowed);
void fake_serve(struct fake *f);
/* After the link is closed. */
void fake_stop(struct fake *f);
void fake_allow(struct fake *f, int n);
void fake_hang_up(struct fake *f);
void fake_wait_seen(struct fake *f, int n);
int fake_seen(struct fake *f);

/* Every request succeeds: a WRITE writes its length, a READ returns what it asks for. */
void all_ok(const struct frame_header *req, int n, int32_t *arg, uint16_t *flags);

#endif
