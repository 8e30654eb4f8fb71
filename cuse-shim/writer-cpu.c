#include "writer-cpu.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void writer_cpu_init(struct writer_cpu *w)
{
	w->on = -1;
	w->writer = 0;
	w->countdown = 0;
	w->stat_fd = -1;
	if (sched_getaffinity(0, sizeof(w->allowed), &w->allowed) != 0 || CPU_COUNT(&w->allowed) < 2)
		CPU_ZERO(&w->allowed);
}

int writer_cpu_parse_processor(const char *stat)
{
	/* "pid (comm) state ppid ...": comm may hold spaces and parentheses, so count from the last
	 * ')'; "processor" is field 39, the 37th after comm. */
	const char *p = strrchr(stat, ')');
	if (!p)
		return -1;
	p++;
	for (int field = 3; field < 39; field++) {
		p = strchr(p + 1, ' ');
		if (!p)
			return -1;
	}
	char *end;
	long cpu = strtol(p + 1, &end, 10);
	if (end == p + 1 || (*end != ' ' && *end != '\n' && *end) || cpu < 0 || cpu >= CPU_SETSIZE)
		return -1;
	return (int)cpu;
}

static int open_stat(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	return open(path, O_RDONLY | O_CLOEXEC);
}

static int processor_in(int fd)
{
	char buf[1024];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return writer_cpu_parse_processor(buf);
}

int writer_cpu_of(pid_t pid)
{
	int fd = open_stat(pid);
	if (fd < 0)
		return -1;
	int cpu = processor_in(fd);
	close(fd);
	return cpu;
}

void writer_cpu_follow(struct writer_cpu *w, pid_t pid)
{
	if (CPU_COUNT(&w->allowed) == 0 || pid <= 0)
		return;
	if (pid == w->writer && w->countdown-- > 0)
		return;
	if (pid != w->writer) {
		writer_cpu_end(w);
		w->stat_fd = open_stat(pid);
		w->writer = pid;
	}
	w->countdown = WRITER_CPU_LOOK_EVERY;
	int cpu = w->stat_fd < 0 ? -1 : processor_in(w->stat_fd);
	if (cpu < 0 && w->stat_fd >= 0) {
		/* The thread the descriptor was opened for has exited: its id may be another's now. */
		close(w->stat_fd);
		w->stat_fd = open_stat(pid);
		cpu = w->stat_fd < 0 ? -1 : processor_in(w->stat_fd);
	}
	if (cpu == w->on)
		return;
	if (cpu >= 0 && CPU_ISSET(cpu, &w->allowed)) {
		cpu_set_t one;
		CPU_ZERO(&one);
		CPU_SET(cpu, &one);
		if (sched_setaffinity(0, sizeof(one), &one) == 0)
			w->on = cpu;
	} else if (w->on >= 0 && sched_setaffinity(0, sizeof(w->allowed), &w->allowed) == 0) {
		w->on = -1; /* the writer runs where this thread may not: anywhere it may */
	}
}

void writer_cpu_end(struct writer_cpu *w)
{
	if (w->stat_fd >= 0)
		close(w->stat_fd);
	w->stat_fd = -1;
	w->writer = 0;
}
