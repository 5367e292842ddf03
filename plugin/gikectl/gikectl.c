/*
 * Copyright (C) 2026 The G-IKEv2 for strongSwan project
 *
 * This program is free software; you can redistribute it and/or modify it
 * under the terms of the GNU General Public License as published by the
 * Free Software Foundation; either version 2 of the License, or (at your
 * option) any later version.  See <http://www.fsf.org/copyleft/gpl.txt>.
 *
 * This program is distributed in the hope that it will be useful, but
 * WITHOUT ANY WARRANTY; without even the implied warranty of MERCHANTABILITY
 * or FITNESS FOR A PARTICULAR PURPOSE.  See the GNU General Public License
 * for more details.
 */

/*
 * gikectl: the operator's command for charon's gikev2 plugin, in the look
 * and feel of swanctl. It talks to the plugin's control socket
 * (charon.plugins.gikev2.socket) with the protocol described in
 * plugin/gikev2_control.h: one request, one response.
 *
 * Exit status: 0 on success, 1 if charon refused the command or could not
 * be reached, 2 on usage errors.
 */

#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#define GIKEV2_CONTROL_PROTOCOL_ONLY
#include "gikev2_control.h"

#ifndef IPSEC_PIDDIR
#define IPSEC_PIDDIR "/var/run"
#endif

/**
 * Default URI, as the plugin's default
 */
#define DEFAULT_URI "unix://" IPSEC_PIDDIR "/charon.gikev2"

/**
 * How long to wait for charon's answer (s)
 */
#define ANSWER_TIMEOUT 30

/**
 * Print usage information
 */
static void usage(FILE *out)
{
	fprintf(out,
"gikectl: G-IKEv2 (RFC 9838) group key management, charon's gikev2 plugin\n"
"usage:\n"
"  gikectl --list     (-l)  list groups (GCKS) and memberships (GM)\n"
"  gikectl --rekey    (-r)  rekey a group's traffic SAs now (GCKS)\n"
"  gikectl --exclude  (-x)  exclude a member from a group (GCKS)\n"
"  gikectl --readmit  (-a)  let an excluded member register again (GCKS)\n"
"  gikectl --register (-j)  register a membership now (GM)\n"
"  gikectl --help     (-h)  show usage information\n"
"options:\n"
"  --group       (-g)  group: section name (groups.<name>) or group ID\n"
"  --member      (-m)  member: identity as --list shows it, or member id\n"
"  --membership  (-M)  membership: section name or group ID\n"
"  --kek         (-k)  with --rekey: replace the group's Rekey SA (KEK)\n"
"  --uri         (-u)  service URI to connect to\n"
"                      (default %s)\n"
"examples:\n"
"  gikectl --list\n"
"  gikectl --rekey --group market\n"
"  gikectl --rekey --kek --group market\n"
"  gikectl --exclude --group market --member gm3@example.com\n"
"  gikectl --readmit --group market --member gm3@example.com\n"
"  gikectl --register --membership market\n", DEFAULT_URI);
}

/**
 * Connect to a unix:// URI, -1 on failure (reported)
 */
static int connect_uri(const char *uri)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	const char *path;
	int fd;

	if (strncmp(uri, "unix://", strlen("unix://")) != 0)
	{
		fprintf(stderr, "gikectl: unsupported URI '%s' (unix:// only)\n", uri);
		return -1;
	}
	path = uri + strlen("unix://");
	if (strlen(path) >= sizeof(addr.sun_path))
	{
		fprintf(stderr, "gikectl: socket path too long: %s\n", path);
		return -1;
	}
	strcpy(addr.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0)
	{
		fprintf(stderr, "gikectl: socket: %s\n", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr*)&addr, sizeof(addr)) < 0)
	{
		fprintf(stderr, "connecting to '%s' failed: %s\n", uri,
				strerror(errno));
		fprintf(stderr, "is charon running with the gikev2 plugin?\n");
		close(fd);
		return -1;
	}
	return fd;
}

/**
 * Write all of a buffer
 */
static int write_all(int fd, const void *buf, size_t len)
{
	ssize_t n;

	while (len)
	{
		n = write(fd, buf, len);
		if (n < 0)
		{
			if (errno == EINTR)
			{
				continue;
			}
			return -1;
		}
		buf = (const char*)buf + n;
		len -= n;
	}
	return 0;
}

/**
 * Read all of a buffer; -1 on errors and early EOF
 */
static int read_all(int fd, void *buf, size_t len)
{
	ssize_t n;

	while (len)
	{
		n = read(fd, buf, len);
		if (n < 0 && errno == EINTR)
		{
			continue;
		}
		if (n <= 0)
		{
			if (n == 0)
			{
				errno = ECONNRESET;
			}
			return -1;
		}
		buf = (char*)buf + n;
		len -= n;
	}
	return 0;
}

/**
 * Append "key=value\n" to a request, checking the value
 */
static int add_arg(char *req, size_t size, const char *key, const char *value)
{
	size_t len = strlen(req);
	const char *c;

	for (c = value; *c; c++)
	{
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
		{
			fprintf(stderr, "gikectl: control characters in --%s\n", key);
			return -1;
		}
	}
	if (snprintf(req + len, size - len, "%s=%s\n", key, value) >=
		(int)(size - len))
	{
		fprintf(stderr, "gikectl: request too long\n");
		return -1;
	}
	return 0;
}

/**
 * Send a request and print the response; exit status
 */
static int run(const char *uri, const char *req)
{
	struct timeval tv = { .tv_sec = ANSWER_TIMEOUT };
	uint8_t header[5];
	uint32_t len = strlen(req);
	char *text;
	int fd, status;

	fd = connect_uri(uri);
	if (fd < 0)
	{
		return 1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	header[0] = len >> 24;
	header[1] = len >> 16;
	header[2] = len >> 8;
	header[3] = len;
	if (write_all(fd, header, 4) < 0 || write_all(fd, req, len) < 0)
	{
		fprintf(stderr, "sending request to '%s' failed: %s\n", uri,
				strerror(errno));
		close(fd);
		return 1;
	}
	if (read_all(fd, header, sizeof(header)) < 0)
	{
		fprintf(stderr, "receiving answer from '%s' failed: %s\n", uri,
				errno == EAGAIN ? "timed out" : strerror(errno));
		close(fd);
		return 1;
	}
	len = (uint32_t)header[1] << 24 | (uint32_t)header[2] << 16 |
		  (uint32_t)header[3] << 8 | header[4];
	if (len > GIKEV2_CONTROL_MAX_RESPONSE)
	{
		fprintf(stderr, "answer from '%s' too long (%u bytes)\n", uri, len);
		close(fd);
		return 1;
	}
	text = malloc(len + 1);
	if (!text || read_all(fd, text, len) < 0)
	{
		fprintf(stderr, "receiving answer from '%s' failed: %s\n", uri,
				text ? strerror(errno) : "out of memory");
		free(text);
		close(fd);
		return 1;
	}
	close(fd);
	text[len] = '\0';
	status = header[0] == GIKEV2_CONTROL_OK ? 0 : 1;
	fputs(text, status ? stderr : stdout);
	free(text);
	return status;
}

int main(int argc, char *argv[])
{
	static const struct option options[] = {
		{ "list",		no_argument,		NULL, 'l' },
		{ "rekey",		no_argument,		NULL, 'r' },
		{ "exclude",	no_argument,		NULL, 'x' },
		{ "readmit",	no_argument,		NULL, 'a' },
		{ "register",	no_argument,		NULL, 'j' },
		{ "kek",		no_argument,		NULL, 'k' },
		{ "help",		no_argument,		NULL, 'h' },
		{ "group",		required_argument,	NULL, 'g' },
		{ "member",		required_argument,	NULL, 'm' },
		{ "membership",	required_argument,	NULL, 'M' },
		{ "uri",		required_argument,	NULL, 'u' },
		{ 0 }
	};
	const char *command = NULL, *group = NULL, *member = NULL;
	const char *membership = NULL, *uri = DEFAULT_URI;
	char req[GIKEV2_CONTROL_MAX_REQUEST + 1] = "";
	bool kek = false;
	int c;

	while ((c = getopt_long(argc, argv, "lrxajkhg:m:M:u:", options,
							NULL)) != -1)
	{
		switch (c)
		{
			case 'l':
			case 'r':
			case 'x':
			case 'a':
			case 'j':
			{
				const char *cmd = c == 'l' ? "list" : c == 'r' ? "rekey" :
								  c == 'x' ? "exclude" :
								  c == 'a' ? "readmit" : "register";

				if (command && strcmp(command, cmd) != 0)
				{
					fprintf(stderr, "gikectl: one command at a time "
							"(--%s and --%s)\n", command, cmd);
					return 2;
				}
				command = cmd;
				break;
			}
			case 'k':
				kek = true;
				break;
			case 'h':
				usage(stdout);
				return 0;
			case 'g':
				group = optarg;
				break;
			case 'm':
				member = optarg;
				break;
			case 'M':
				membership = optarg;
				break;
			case 'u':
				uri = optarg;
				break;
			default:
				usage(stderr);
				return 2;
		}
	}
	if (optind < argc)
	{
		fprintf(stderr, "gikectl: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (!command)
	{
		usage(stderr);
		return 2;
	}
	snprintf(req, sizeof(req), "%s\n", command);
	if (kek && strcmp(command, "rekey") != 0)
	{
		fprintf(stderr, "gikectl: --kek goes with --rekey\n");
		return 2;
	}
	if (strcmp(command, "rekey") == 0 || strcmp(command, "exclude") == 0 ||
		strcmp(command, "readmit") == 0)
	{
		if (!group)
		{
			fprintf(stderr, "gikectl: --%s needs --group\n", command);
			return 2;
		}
		if (add_arg(req, sizeof(req), "group", group) < 0)
		{
			return 2;
		}
	}
	if (kek && add_arg(req, sizeof(req), "kek", "yes") < 0)
	{
		return 2;
	}
	if (strcmp(command, "exclude") == 0 || strcmp(command, "readmit") == 0)
	{
		if (!member)
		{
			fprintf(stderr, "gikectl: --%s needs --member\n", command);
			return 2;
		}
		if (add_arg(req, sizeof(req), "member", member) < 0)
		{
			return 2;
		}
	}
	if (strcmp(command, "register") == 0)
	{
		if (!membership)
		{	/* a group ID names the membership too */
			membership = group;
		}
		if (!membership)
		{
			fprintf(stderr, "gikectl: --register needs --membership\n");
			return 2;
		}
		if (add_arg(req, sizeof(req), "membership", membership) < 0)
		{
			return 2;
		}
	}
	return run(uri, req);
}
