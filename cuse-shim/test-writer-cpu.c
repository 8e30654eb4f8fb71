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

struct on_cpu {
	int cpu;
	pid_t tid; /* as FUSE gives a request's caller */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int done, quit;
};

/* A "writer": runs on its CPU, says so, and sleeps until told to end. */
static void *writer_main(void *arg)
{
	struct on_cpu *w = arg;
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(w->cpu, &one);
	sched_setaffinity(0, sizeof(one), &one);
	pthread_mutex_lock(&w->lock);
	w->tid = gettid();
	w->done = 1;
	pthread_cond_broadcast(&w->cond);
	while (!w->quit)
		pthread_cond_wait(&w->cond, &w->lock);
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* The follower lands on each writer's CPU in turn, and stays within the mask it started with. */
static void follows(void)
{
	cpu_set_t all;
	CHECK(sched_getaffinity(0, sizeof(all), &all) == 0);
	if (CPU_COUNT(&all) < 2 || !CPU_ISSET(0, &all) || !CPU_ISSET(1, &all)) {
		printf("test-writer-cpu: fewer than CPUs 0 and 1 here, following not checked\n");
		return;
	}
	struct writer_cpu f;
	writer_cpu_init(&f);
	CHECK(f.on == -1);
	for (int cpu = 1; cpu >= 0; cpu--) {
		struct on_cpu w = {.cpu = cpu, .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
		pthread_t t;
		pthread_create(&t, NULL, writer_main, &w);
		pthread_mutex_lock(&w.lock);
		while (!w.done)
			pthread_cond_wait(&w.cond, &w.lock);
		pthread_mutex_unlock(&w.lock);
		writer_cpu_follow(&f, w.tid);
		cpu_set_t now;
		CHECK(sched_getaffinity(0, sizeof(now), &now) == 0);
		CHECK(f.on == cpu);
		CHECK(CPU_COUNT(&now) == 1 && CPU_ISSET(cpu, &now));
		pthread_mutex_lock(&w.lock);
		w.quit = 1;
		pthread_cond_broadcast(&w.cond);
		pthread_mutex_unlock(&w.lock);
		pthread_join(t, NULL);
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

int main(void)
{
	parses_processor();
	follows();
	reads_this_thread();
	return test_result("test-writer-cpu");
}
