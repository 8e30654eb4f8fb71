/*
 * Cross-language test helper: converts between frames and one text line per frame,
 * "type flags id arg hexpayload" (decimal numbers, lowercase hex payload, "-" when empty).
 *   frame-tool encode   text on stdin -> binary frames on stdout
 *   frame-tool decode   binary frames on stdin -> text on stdout
 * Bad input: a message on stderr and exit status 1.
 */
#define _GNU_SOURCE
#include "frames.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((format(printf, 1, 2))) static int fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "frame-tool: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return 1;
}

/* Decimal, or hex with 0x; a leading 0 is not octal, so "010" stays ten. */
static int parse_number(const char *s, long long lo, long long hi, long long *out)
{
	const char *p = s;
	int neg = 0;
	int base = 10;
	if (*p == '-' || *p == '+')
		neg = *p++ == '-';
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		base = 16;
		p += 2;
	}
	if (!isxdigit((unsigned char)*p))
		return -1;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(p, &end, base);
	if (errno || *end || v > (unsigned long long)INT64_MAX)
		return -1;
	long long n = neg ? -(long long)v : (long long)v;
	if (n < lo || n > hi)
		return -1;
	*out = n;
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static int encode(void)
{
	char *line = NULL;
	size_t size = 0;
	ssize_t n;
	unsigned long lineno = 0;
	int status = 0;
	uint8_t *payload = NULL;

	while ((n = getline(&line, &size, stdin)) >= 0) {
		lineno++;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		char *fields[6];
		int count = 0;
		for (char *save = NULL, *tok = strtok_r(line, " \t", &save); tok;
		     tok = strtok_r(NULL, " \t", &save))
			if (count < 6)
				fields[count++] = tok;
			else
				count = 7;
		if (count == 0)
			continue;
		if (count != 5) {
			status = fail("line %lu: expected 5 fields (type flags id arg hexpayload)", lineno);
			break;
		}
		static const char *names[4] = {"type", "flags", "id", "arg"};
		static const long long lo[4] = {0, 0, 0, INT32_MIN};
		static const long long hi[4] = {UINT16_MAX, UINT16_MAX, UINT32_MAX, INT32_MAX};
		long long v[4];
		for (int i = 0; i < 4 && status == 0; i++)
			if (parse_number(fields[i], lo[i], hi[i], &v[i]))
				status = fail("line %lu: bad %s", lineno, names[i]);
		if (status)
			break;

		const char *hex = fields[4];
		size_t hexlen = strcmp(hex, "-") == 0 ? 0 : strlen(hex);
		if (hexlen % 2) {
			status = fail("line %lu: payload has an odd number of hex digits", lineno);
			break;
		}
		if (hexlen / 2 > FRAME_MAX_PAYLOAD) {
			status = fail("line %lu: payload over the maximum", lineno);
			break;
		}
		free(payload);
		payload = malloc(hexlen / 2 + 1);
		if (!payload) {
			status = fail("line %lu: %s", lineno, strerror(ENOMEM));
			break;
		}
		for (size_t i = 0; i < hexlen / 2; i++) {
			int hi4 = hexval(hex[2 * i]), lo4 = hexval(hex[2 * i + 1]);
			if (hi4 < 0 || lo4 < 0) {
				status = fail("line %lu: payload is not hex", lineno);
				break;
			}
			payload[i] = (uint8_t)(hi4 << 4 | lo4);
		}
		if (status)
			break;

		struct frame_header h = {
			.length = (uint32_t)(hexlen / 2),
			.type = (uint16_t)v[0],
			.flags = (uint16_t)v[1],
			.id = (uint32_t)v[2],
			.arg = (int32_t)v[3],
		};
		uint8_t head[FRAME_HEADER_BYTES];
		frame_header_encode(&h, head);
		if (fwrite(head, 1, sizeof(head), stdout) != sizeof(head) ||
		    fwrite(payload, 1, h.length, stdout) != h.length) {
			status = fail("line %lu: writing: %s", lineno, strerror(errno));
			break;
		}
	}
	free(line);
	free(payload);
	if (status == 0 && fflush(stdout) != 0)
		status = fail("writing: %s", strerror(errno));
	return status;
}

static int decode(void)
{
	static const char digits[] = "0123456789abcdef";
	uint8_t head[FRAME_HEADER_BYTES];
	unsigned long frame = 0;
	int status = 0;
	uint8_t *payload = NULL;
	char *hex = NULL;

	for (;;) {
		size_t got = fread(head, 1, sizeof(head), stdin);
		if (got == 0 && !ferror(stdin))
			break;
		frame++;
		if (got != sizeof(head)) {
			status = fail("frame %lu: input ends inside the header", frame);
			break;
		}
		struct frame_header h;
		if (frame_header_decode(head, &h)) {
			status = fail("frame %lu: payload length over the maximum", frame);
			break;
		}
		free(payload);
		free(hex);
		payload = malloc((size_t)h.length + 1);
		hex = malloc(2 * (size_t)h.length + 2);
		if (!payload || !hex) {
			status = fail("frame %lu: %s", frame, strerror(ENOMEM));
			break;
		}
		if (fread(payload, 1, h.length, stdin) != h.length) {
			status = fail("frame %lu: input ends inside the payload", frame);
			break;
		}
		if (h.length == 0) {
			strcpy(hex, "-");
		} else {
			for (size_t i = 0; i < h.length; i++) {
				hex[2 * i] = digits[payload[i] >> 4];
				hex[2 * i + 1] = digits[payload[i] & 15];
			}
			hex[2 * (size_t)h.length] = '\0';
		}
		printf("%u %u %" PRIu32 " %" PRId32 " %s\n", h.type, h.flags, h.id, h.arg, hex);
	}
	free(payload);
	free(hex);
	if (ferror(stdin))
		status = fail("reading: %s", strerror(errno));
	if (fflush(stdout) != 0)
		status = fail("writing: %s", strerror(errno));
	return status;
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "encode") == 0)
		return encode();
	if (argc == 2 && strcmp(argv[1], "decode") == 0)
		return decode();
	fprintf(stderr, "usage: frame-tool encode|decode  (text lines \"type flags id arg hexpayload\" <-> binary frames)\n");
	return 1;
}
