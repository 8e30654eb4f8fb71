/* writer-cpu: reading a thread's last CPU from /proc, and following a writer within the mask. */
#include "writer-cpu.h"
#include "test-check.h"

#include <pthread.h>
#include <unistd.h>

int failures;

/* Fields 3 to 38 of a stat line, then "processor" (39) and two more. */
#define MIDDLE "S 1 1 1 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 12 1000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17"

static void parses_processor(void)
{
	CHECK(writer_cpu_parse_processor("42 (dd) " MIDDLE " 3 0 0\n") == 3);
	/* A command name with spaces and parentheses of its own. */
	CHECK(writer_cpu_parse_processor("42 (a) b (c) d) " MIDDLE " 1 0 0\n") == 1);
	CHECK(writer_cpu_parse_processor("42 (dd) " MIDDLE " 12") == 12);
	CHECK(writer_cpu_parse_processor("42 (dd) S 1 1") == -1);
	CHECK(writer_cpu_parse_processor("42 (dd) " MIDDLE " x 0 0\n") == -1);
	CHECK(writer_cpu_parse_processor("42 (dd) " MIDDLE " -1 0 0\n") == -1);
	CHECK(writer_cpu_parse_processor("no parenthesis") == -1);
}

static void reads_this_thread(void)
{
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(0, &one);
	CHECK(sched_setaffinity(0, sizeof(one), &one) == 0);
	CHECK(writer_cpu_of(getpid()) == 0); /* where this thread runs now */
	CHECK(writer_cpu_of(-1) == -1);
}

/* A "writer" thread held to one CPU, which the test can move to another. */
struct writer {
	pid_t tid; /* as FUSE gives a request's caller */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int cpu;   /* where it is to run; it moves when this changes */
	int on;    /* where it runs now, -1 before it started */
	int quit;
};

static void hold_to(int cpu)
{
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	sched_setaffinity(0, sizeof(one), &one);
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	pthread_mutex_lock(&w->lock);
	w->tid = gettid();
	while (!w->quit) {
		if (w->on != w->cpu) {
			hold_to(w->cpu); /* returns on that CPU, so /proc says so */
			w->on = w->cpu;
			pthread_cond_broadcast(&w->cond);
		}
		pthread_cond_wait(&w->cond, &w->lock);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* Puts the writer on cpu (starting it if need be) and returns once it runs there. */
static void writer_to(struct writer *w, int cpu)
{
	pthread_mutex_lock(&w->lock);
	w->cpu = cpu;
	pthread_cond_broadcast(&w->cond);
	while (w->on != cpu)
		pthread_cond_wait(&w->cond, &w->lock);
	pthread_mutex_unlock(&w->lock);
}

static void writer_start(struct writer *w, int cpu)
{
	*w = (struct writer){.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER, .cpu = cpu, .on = -1};
	pthread_create(&w->thread, NULL, writer_main, w);
	writer_to(w, cpu);
}

static void writer_stop(struct writer *w)
{
	pthread_mutex_lock(&w->lock);
	w->quit = 1;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
}

/* 1 when this thread is held to cpu alone, as the follower says it is. */
static int held_to(const struct writer_cpu *f, int cpu)
{
	cpu_set_t now;
	return sched_getaffinity(0, sizeof(now), &now) == 0 && f->on == cpu && CPU_COUNT(&now) == 1 &&
	       CPU_ISSET(cpu, &now);
}

/* 1 when CPUs 0 and 1 are both this thread's to use. */
static int two_cpus(cpu_set_t *all)
{
	CHECK(sched_getaffinity(0, sizeof(*all), all) == 0);
	if (CPU_COUNT(all) < 2 || !CPU_ISSET(0, all) || !CPU_ISSET(1, all)) {
		printf("test-writer-cpu: fewer than CPUs 0 and 1 here, following not checked\n");
		return 0;
	}
	return 1;
}

/* The follower lands on each writer's CPU in turn, and stays within the mask it started with. */
static void follows(void)
{
	cpu_set_t all;
	if (!two_cpus(&all))
		return;
	struct writer_cpu f;
	writer_cpu_init(&f);
	CHECK(f.on == -1);
	for (int cpu = 1; cpu >= 0; cpu--) {
		struct writer w;
		writer_start(&w, cpu);
		writer_cpu_follow(&f, w.tid);
		CHECK(held_to(&f, cpu));
		writer_stop(&w);
	}
	/* A writer on a CPU outside the mask it started with: back to the whole mask. */
	f.allowed = all;
	CPU_CLR(0, &f.allowed);
	f.countdown = 0;
	writer_cpu_follow(&f, getpid() + 0x40000000); /* no such thread: CPU unknown */
	cpu_set_t now;
	CHECK(sched_getaffinity(0, sizeof(now), &now) == 0);
	CHECK(f.on == -1);
	CHECK(CPU_EQUAL(&now, &f.allowed));
	CHECK(sched_setaffinity(0, sizeof(all), &all) == 0);
}

/* A follower, and a writer started on CPU 1 that it has followed there; 0 (nothing started) where
 * CPUs 0 and 1 are not both this thread's, whose mask goes in *all. */
static int follow_writer_on_1(struct writer_cpu *f, struct writer *w, cpu_set_t *all)
{
	if (!two_cpus(all))
		return 0;
	writer_cpu_init(f);
	writer_start(w, 1);
	writer_cpu_follow(f, w->tid);
	CHECK(held_to(f, 1));
	return 1;
}

/* The same writer moved by the scheduler: followed on its WRITER_CPU_LOOK_EVERY+1th request after
 * the last look, not before (a look is a /proc read). */
static void looks_again(void)
{
	cpu_set_t all;
	struct writer_cpu f;
	struct writer w;
	if (!follow_writer_on_1(&f, &w, &all))
		return;
	writer_to(&w, 0);
	for (int i = 0; i < WRITER_CPU_LOOK_EVERY; i++)
		writer_cpu_follow(&f, w.tid);
	CHECK(held_to(&f, 1));
	writer_cpu_follow(&f, w.tid);
	CHECK(held_to(&f, 0));
	writer_stop(&w);
	writer_cpu_end(&f);
	CHECK(sched_setaffinity(0, sizeof(all), &all) == 0);
}

/* The writer's /proc file stays open between looks; once the writer has exited, the next look
 * finds no CPU for it and the follower returns to its whole mask, and writer_cpu_end closes it. */
static void keeps_the_file_open(void)
{
	cpu_set_t all;
	struct writer_cpu f;
	struct writer w;
	if (!follow_writer_on_1(&f, &w, &all))
		return;
	CHECK(f.stat_fd >= 0);
	/* A second look at the same writer reads the same open file (a reopen would start at offset 0,
	 * and may well get the same descriptor number). */
	CHECK(lseek(f.stat_fd, 7, SEEK_SET) == 7);
	for (int i = 0; i <= WRITER_CPU_LOOK_EVERY; i++)
		writer_cpu_follow(&f, w.tid);
	CHECK(held_to(&f, 1));
	CHECK(lseek(f.stat_fd, 0, SEEK_CUR) == 7);
	pid_t gone = w.tid;
	writer_stop(&w);
	for (int i = 0; i <= WRITER_CPU_LOOK_EVERY; i++)
		writer_cpu_follow(&f, gone);
	CHECK(f.on == -1);
	cpu_set_t now;
	CHECK(sched_getaffinity(0, sizeof(now), &now) == 0);
	CHECK(CPU_EQUAL(&now, &f.allowed));
	CHECK(f.stat_fd < 0); /* the exited writer's file is closed, and none can be opened for it */
	writer_cpu_end(&f);
	CHECK(f.stat_fd == -1);
	CHECK(sched_setaffinity(0, sizeof(all), &all) == 0);
}

int main(void)
{
	parses_processor();
	follows();
	looks_again();
	keeps_the_file_open();
	reads_this_thread();
	return test_result("test-writer-cpu");
}
