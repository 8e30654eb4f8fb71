/*
 * Keeps the thread that serves the kernel's requests on the CPU its writer last ran on.
 *
 * A writer such as dd or tar has one request in flight: it sleeps in write(2) until the shim
 * answers. When the shim runs on another CPU, every record costs two cross-CPU wake-ups, each
 * bringing an idle CPU back (75-97 us in a VM here); on the writer's CPU the two simply take turns.
 * Measured here at 10 KiB records with a FUSE file that only answers: about 10,000 records/s
 * across CPUs, 52,000 on one. The writer is asleep whenever the shim works for it, so sharing its
 * CPU costs it nothing. Only CPUs of the thread's own affinity mask at writer_cpu_init are used
 * (a cpuset or systemd's CPUAffinity= stays in force); threads started before that keep theirs.
 */
#ifndef WRITER_CPU_H
#define WRITER_CPU_H

#define _GNU_SOURCE
#include <sched.h>
#include <sys/types.h>

struct writer_cpu {
	cpu_set_t allowed; /* the thread's mask at init */
	int on;            /* the CPU the thread is held to, -1: its own mask */
	pid_t writer;      /* whose CPU was last looked up */
	int stat_fd;       /* its /proc/PID/stat, kept open: a read of it costs a third of open, read, close */
	unsigned countdown;
};

/* Off when the mask cannot be read or allows one CPU only. */
void writer_cpu_init(struct writer_cpu *w);

/* Requests between two looks at the same writer's CPU: a look is a read of /proc/PID/stat (2.4 us
 * here, with the file kept open); a writer moved elsewhere is followed within this many records. */
#define WRITER_CPU_LOOK_EVERY 16

/* For a request from thread `pid` (fuse_req_ctx's): when the caller changes, and after
 * WRITER_CPU_LOOK_EVERY more requests from the same one, moves the calling thread to that
 * thread's last CPU. Never fails: it only helps. */
void writer_cpu_follow(struct writer_cpu *w, pid_t pid);

/* Closes what following the last writer kept open. */
void writer_cpu_end(struct writer_cpu *w);

/* The CPU /proc/PID/stat says the thread last ran on, -1 if unknown (parse_processor: of that text). */
int writer_cpu_of(pid_t pid);
int writer_cpu_parse_processor(const char *stat);

#endif
