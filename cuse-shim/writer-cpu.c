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

int writer_cpu_of(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return writer_cpu_parse_processor(buf);
}

void writer_cpu_follow(struct writer_cpu *w, pid_t pid)
{
	if (CPU_COUNT(&w->allowed) == 0 || pid <= 0)
		return;
	if (pid == w->writer && w->countdown-- > 0)
		return;
	w->writer = pid;
	w->countdown = WRITER_CPU_LOOK_EVERY;
	int cpu = writer_cpu_of(pid);
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
