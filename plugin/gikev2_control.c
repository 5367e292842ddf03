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

#include "gikev2_control.h"
#include "gikev2_util.h"

#include <stdio.h>
#include <errno.h>
#include <inttypes.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <daemon.h>

#ifndef IPSEC_PIDDIR
#error IPSEC_PIDDIR (the pid directory of charon) must be defined
#endif

/**
 * Default URI of the control socket, next to vici's
 */
#define GIKEV2_CONTROL_DEFAULT_URI "unix://" IPSEC_PIDDIR "/charon.gikev2"

/**
 * Backlog of the control socket
 */
#define GIKEV2_CONTROL_BACKLOG 8

/**
 * Requests served at once (each takes one of charon's threads for at most
 * GIKEV2_CONTROL_TIMEOUT_MS)
 */
#define GIKEV2_CONTROL_CONCURRENCY 2

/**
 * Arguments of a request, at most
 */
#define MAX_ARGS 8

typedef struct private_gikev2_control_t private_gikev2_control_t;

/**
 * Private data of a gikev2_control_t object.
 */
struct private_gikev2_control_t {

	/**
	 * Public interface.
	 */
	gikev2_control_t public;

	/**
	 * GCKS listener
	 */
	gikev2_gcks_listener_t *gcks;

	/**
	 * GM listener
	 */
	gikev2_gm_listener_t *gm;

	/**
	 * Stream service accepting clients
	 */
	stream_service_t *service;
};

/**
 * A parsed request
 */
typedef struct {

	/**
	 * Command (first line)
	 */
	char *command;

	/**
	 * Argument keys
	 */
	char *keys[MAX_ARGS];

	/**
	 * Argument values
	 */
	char *values[MAX_ARGS];

	/**
	 * Number of arguments
	 */
	int count;

} request_t;

/**
 * A response being built
 */
typedef struct {

	/**
	 * GIKEV2_CONTROL_OK or GIKEV2_CONTROL_FAILED
	 */
	uint8_t status;

	/**
	 * Text written so far (open_memstream())
	 */
	char *text;

	/**
	 * Length of text
	 */
	size_t len;

	/**
	 * Stream writing text
	 */
	FILE *out;

} response_t;

/**
 * Set the receive and send timeouts of a socket to what is left until a
 * deadline, FALSE if it passed
 */
static bool set_timeout(int fd, uint64_t deadline)
{
	struct timeval tv;
	uint64_t now = gikev2_now_ms(), left;

	if (now >= deadline)
	{
		return FALSE;
	}
	left = deadline - now;
	tv.tv_sec = left / 1000;
	tv.tv_usec = (left % 1000) * 1000;
	return setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0 &&
		   setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == 0;
}

/**
 * Read exactly len octets before the deadline
 */
static bool read_bounded(stream_t *stream, int fd, void *buf, size_t len,
						 uint64_t deadline)
{
	ssize_t ret;

	while (len)
	{
		if (!set_timeout(fd, deadline))
		{
			errno = ETIMEDOUT;
			return FALSE;
		}
		ret = stream->read(stream, buf, len, TRUE);
		if (ret < 0)
		{
			if (errno == EAGAIN || errno == EWOULDBLOCK)
			{
				errno = ETIMEDOUT;
			}
			return FALSE;
		}
		if (ret == 0)
		{
			errno = ECONNRESET;
			return FALSE;
		}
		buf += ret;
		len -= ret;
	}
	return TRUE;
}

/**
 * Print a duration in swanctl's style (42s, 59m58s, 1h59m, 2d3h)
 */
static char *duration(char *buf, size_t len, uint64_t secs)
{
	if (secs < 60)
	{
		snprintf(buf, len, "%" PRIu64 "s", secs);
	}
	else if (secs < 3600)
	{
		snprintf(buf, len, "%" PRIu64 "m%" PRIu64 "s", secs / 60, secs % 60);
	}
	else if (secs < 86400)
	{
		snprintf(buf, len, "%" PRIu64 "h%" PRIu64 "m", secs / 3600,
				 (secs % 3600) / 60);
	}
	else
	{
		snprintf(buf, len, "%" PRIu64 "d%" PRIu64 "h", secs / 86400,
				 (secs % 86400) / 3600);
	}
	return buf;
}

/**
 * Find the settings section of a group given by section name or, if no
 * section has that name, group ID; FALSE if no group is configured so
 */
static bool find_group(char *name, char **section, char **id)
{
	enumerator_t *enumerator;
	char *sect, *gid, *by_id = NULL;

	*id = lib->settings->get_str(lib->settings,
							"%s.plugins.gikev2.groups.%s.id", NULL,
							lib->ns, name);
	if (*id)
	{
		*section = strdup(name);
		*id = strdup(*id);
		return TRUE;
	}
	enumerator = lib->settings->create_section_enumerator(lib->settings,
										"%s.plugins.gikev2.groups", lib->ns);
	while (enumerator->enumerate(enumerator, &sect))
	{
		gid = lib->settings->get_str(lib->settings,
							"%s.plugins.gikev2.groups.%s.id", NULL,
							lib->ns, sect);
		if (gid && streq(gid, name))
		{
			by_id = strdup(sect);
			break;
		}
	}
	enumerator->destroy(enumerator);
	if (!by_id)
	{
		return FALSE;
	}
	*section = by_id;
	*id = strdup(name);
	return TRUE;
}

/**
 * Number of groups configured
 */
static int count_sections(char *what)
{
	enumerator_t *enumerator;
	char *sect;
	int count = 0;

	enumerator = lib->settings->create_section_enumerator(lib->settings,
										"%s.plugins.gikev2.%s", lib->ns, what);
	while (enumerator->enumerate(enumerator, &sect))
	{
		count++;
	}
	enumerator->destroy(enumerator);
	return count;
}

/**
 * Section name of a group ID as the core prints it, NULL if none
 */
static char *group_section(char *gid)
{
	enumerator_t *enumerator;
	char *sect, *id, *found = NULL;

	enumerator = lib->settings->create_section_enumerator(lib->settings,
										"%s.plugins.gikev2.groups", lib->ns);
	while (enumerator->enumerate(enumerator, &sect))
	{
		id = lib->settings->get_str(lib->settings,
							"%s.plugins.gikev2.groups.%s.id", NULL,
							lib->ns, sect);
		if (id && streq(id, gid))
		{
			found = strdup(sect);
			break;
		}
	}
	enumerator->destroy(enumerator);
	return found;
}

/**
 * Print a Rekey SA SPI (32 hex digits) as swanctl prints IKE SPIs
 */
static void print_spi(FILE *out, char *hex)
{
	if (strlen(hex) == 2 * GIKEV2_REKEY_SPI_LEN)
	{
		fprintf(out, "%.16s_i %.16s_r", hex, hex + 16);
	}
	else
	{
		fprintf(out, "%s", hex);
	}
}

/**
 * Print one line of gikev2_gcks_status() for the operator; lines not
 * understood are passed on indented
 */
static void print_gcks_line(FILE *out, char *line)
{
	char spi[2 * GIKEV2_REKEY_SPI_LEN + 1], proto[8], buf[32], *sep, *role;
	char *section;
	u_int members, mid, spi32, keys, octets;
	uint64_t secs;

	if (strpfx(line, "group ") && (sep = strstr(line, ": ")))
	{
		*sep = '\0';
		line += strlen("group ");
		section = group_section(line);
		if (section)
		{
			fprintf(out, "%s: group '%s'", section, line);
		}
		else
		{
			fprintf(out, "%s:", line);
		}
		free(section);
		line = sep + 2;
		if (sscanf(line, "%u member(s), rekey SA %32[0-9a-f] expires in "
				   "%" SCNu64 "s, next message ID %u", &members, spi, &secs,
				   &mid) == 4)
		{
			fprintf(out, ", %u member%s\n  rekey SA ", members,
					members == 1 ? "" : "s");
			print_spi(out, spi);
			fprintf(out, ", expires in %s, next message ID %u\n",
					duration(buf, sizeof(buf), secs), mid);
		}
		else if (sscanf(line, "%u member(s)", &members) == 1)
		{
			fprintf(out, ", %u member%s\n  no rekey SA (inband rekeys only)\n",
					members, members == 1 ? "" : "s");
		}
		else
		{
			fprintf(out, " %s\n", line);
		}
	}
	else if (strpfx(line, "  member ") && (sep = strchr(line + 9, ' ')) &&
			 (role = strrchr(line, ' ')) && role > sep)
	{
		*sep = '\0';
		*role = '\0';
		fprintf(out, "  member '%s', id %s, %s\n", sep + 1, line + 9,
				role + 1);
	}
	else if (sscanf(line, "  tek %7s spi 0x%8x expires in %" SCNu64 "s",
					proto, &spi32, &secs) == 3)
	{
		fprintf(out, "  %s SPI 0x%08x, expires in %s\n", proto, spi32,
				duration(buf, sizeof(buf), secs));
	}
	else if (strpfx(line, "  excluded "))
	{
		fprintf(out, "  excluded '%s', refused until readmitted\n",
				line + strlen("  excluded "));
	}
	else if (sscanf(line, "  rekey message ID %u: %u wrapped key(s), %u "
					"octets", &mid, &keys, &octets) == 3)
	{
		fprintf(out, "  sent rekey message ID %u, %u wrapped key%s, %u bytes\n",
				mid, keys, keys == 1 ? "" : "s", octets);
	}
	else if (*line)
	{
		fprintf(out, "  %s\n", line);
	}
}

/**
 * Print one line of gikev2_gm_status() for the operator, the first line
 * of a membership with its name and connection
 */
static void print_gm_line(FILE *out, char *line, char *name, char *conn)
{
	char spi[2 * GIKEV2_REKEY_SPI_LEN + 1], proto[8], dir[16], buf[32];
	char *sep, *rest;
	u_int spi32;
	uint64_t secs;

	if (strpfx(line, "group ") && (sep = strstr(line, ": ")))
	{
		*sep = '\0';
		rest = strchr(sep + 2, ',');
		if (rest)
		{
			*rest = '\0';
			rest += 2;
		}
		fprintf(out, "%s: group '%s', %s, connection '%s'\n", name,
				line + strlen("group "), sep + 2, conn);
		if (rest && *rest)
		{
			fprintf(out, "  %s\n", rest);
		}
	}
	else if (sscanf(line, "  rekey SA %32[0-9a-f]", spi) == 1)
	{
		fprintf(out, "  rekey SA ");
		print_spi(out, spi);
		fprintf(out, "\n");
	}
	else if (sscanf(line, "  tek %7s spi 0x%8x %15s expires in %" SCNu64 "s",
					proto, &spi32, dir, &secs) == 4)
	{
		fprintf(out, "  %s SPI 0x%08x, %s, expires in %s\n", proto, spi32,
				dir, duration(buf, sizeof(buf), secs));
	}
	else if (*line)
	{
		fprintf(out, "  %s\n", line);
	}
}

/**
 * Get an argument of a request, NULL if missing
 */
static char *get_arg(request_t *req, char *key)
{
	int i;

	for (i = 0; i < req->count; i++)
	{
		if (streq(req->keys[i], key))
		{
			return req->values[i];
		}
	}
	return NULL;
}

/**
 * Fail a request with a message to the client and one log line
 */
static void fail(response_t *res, char *fmt, ...)
{
	char msg[512];
	va_list args;

	va_start(args, fmt);
	vsnprintf(msg, sizeof(msg), fmt, args);
	va_end(args);
	res->status = GIKEV2_CONTROL_FAILED;
	fprintf(res->out, "%s\n", msg);
	DBG1(DBG_CFG, "gikev2: operator request failed: %s", msg);
}

/**
 * list: groups served and memberships
 */
static void cmd_list(private_gikev2_control_t *this, request_t *req,
					 response_t *res)
{
	enumerator_t *enumerator;
	char *text, *line, *next, *name, *conn;
	bool first;

	DBG1(DBG_CFG, "gikev2: operator lists groups and memberships");
	if (count_sections("groups"))
	{
		text = this->gcks->status(this->gcks);
		if (!text)
		{
			fail(res, "reading the GCKS's status failed");
			return;
		}
		for (line = text; line && *line; line = next)
		{
			next = strchr(line, '\n');
			if (next)
			{
				*next++ = '\0';
			}
			print_gcks_line(res->out, line);
		}
		free(text);
	}
	enumerator = this->gm->create_status_enumerator(this->gm);
	while (enumerator->enumerate(enumerator, &name, &conn, &text))
	{
		first = TRUE;
		for (line = text; line && *line; line = next)
		{
			next = strchr(line, '\n');
			if (next)
			{
				*next++ = '\0';
			}
			print_gm_line(res->out, line, name, conn);
			first = FALSE;
		}
		if (first)
		{
			fprintf(res->out, "%s: connection '%s'\n", name, conn);
		}
	}
	enumerator->destroy(enumerator);
	if (!count_sections("groups") && !count_sections("memberships"))
	{
		fprintf(res->out, "no groups served and no memberships configured\n");
	}
}

/**
 * Resolve the group argument of a GCKS command, FALSE if failed
 */
static bool gcks_group(response_t *res, request_t *req, char **section,
					   char **id)
{
	char *group = get_arg(req, "group");

	if (!count_sections("groups"))
	{
		fail(res, "%s: this charon serves no groups (not a GCKS)",
			 req->command);
		return FALSE;
	}
	if (!group || !*group)
	{
		fail(res, "%s: a group is required", req->command);
		return FALSE;
	}
	if (!find_group(group, section, id))
	{
		fail(res, "%s: no group '%s' (neither a groups section nor a group "
			 "ID)", req->command, group);
		return FALSE;
	}
	return TRUE;
}

/**
 * rekey: rekey a group's TEKs now, or with kek=yes its Rekey SA
 */
static void cmd_rekey(private_gikev2_control_t *this, request_t *req,
					  response_t *res)
{
	char *section, *id, *kek = get_arg(req, "kek");
	bool rekey_kek = kek && streq(kek, "yes");
	gikev2_error_t err;

	if (!gcks_group(res, req, &section, &id))
	{
		return;
	}
	DBG1(DBG_CFG, "gikev2: operator rekeys %s of group '%s'",
		 rekey_kek ? "the Rekey SA" : "the traffic SAs", section);
	err = this->gcks->rekey(this->gcks, id, rekey_kek);
	if (err == GIKEV2_OK)
	{
		fprintf(res->out, "group '%s' (%s): %s rekeyed\n", section, id,
				rekey_kek ? "Rekey SA (KEK)" : "traffic SAs");
	}
	else
	{
		fail(res, "rekeying group '%s' failed: %s", section,
			 gikev2_last_error());
	}
	free(section);
	free(id);
}

/**
 * exclude: exclude a member from a group
 */
static void cmd_exclude(private_gikev2_control_t *this, request_t *req,
						response_t *res)
{
	char *section, *id, *member = get_arg(req, "member");
	gikev2_error_t err;
	uint64_t mid = 0;

	if (!gcks_group(res, req, &section, &id))
	{
		return;
	}
	if (!member || !*member)
	{
		fail(res, "exclude: a member is required");
	}
	else
	{
		DBG1(DBG_CFG, "gikev2: operator excludes member '%s' from group '%s'",
			 member, section);
		err = this->gcks->exclude(this->gcks, id, member, &mid);
		switch (err)
		{
			case GIKEV2_OK:
				fprintf(res->out, "member '%s' (id %" PRIu64 ") excluded from "
						"group '%s' (%s)\n", member, mid, section, id);
				break;
			case GIKEV2_ERR_STATE:
				fail(res, "excluding '%s' from group '%s' failed: %s (the "
					 "group needs key_management = lkh)", member, section,
					 gikev2_last_error());
				break;
			default:
				fail(res, "excluding '%s' from group '%s' failed: %s", member,
					 section, gikev2_last_error());
				break;
		}
	}
	free(section);
	free(id);
}

/**
 * readmit: let an excluded member register again
 */
static void cmd_readmit(private_gikev2_control_t *this, request_t *req,
						response_t *res)
{
	char *section, *id, *member = get_arg(req, "member");

	if (!gcks_group(res, req, &section, &id))
	{
		return;
	}
	if (!member || !*member)
	{
		fail(res, "readmit: a member is required");
	}
	else
	{
		DBG1(DBG_CFG, "gikev2: operator readmits member '%s' to group '%s'",
			 member, section);
		if (this->gcks->readmit(this->gcks, id, member) == GIKEV2_OK)
		{
			fprintf(res->out, "member '%s' may register to group '%s' (%s) "
					"again\n", member, section, id);
		}
		else
		{
			fail(res, "readmitting '%s' to group '%s' failed: %s", member,
				 section, gikev2_last_error());
		}
	}
	free(section);
	free(id);
}

/**
 * register: initiate a membership's connection
 */
static void cmd_register(private_gikev2_control_t *this, request_t *req,
						 response_t *res)
{
	char *name = get_arg(req, "membership"), *conn;

	if (!count_sections("memberships"))
	{
		fail(res, "register: this charon has no memberships (not a GM)");
		return;
	}
	if (!name || !*name)
	{
		fail(res, "register: a membership is required");
		return;
	}
	DBG1(DBG_CFG, "gikev2: operator registers membership '%s'", name);
	conn = this->gm->register_membership(this->gm, name);
	if (!conn)
	{
		fail(res, "register: no membership '%s' (neither a memberships "
			 "section nor a group ID)", name);
		return;
	}
	fprintf(res->out, "membership '%s': initiating connection '%s'\n", name,
			conn);
}

/**
 * Parse a request body in place, FALSE with a reason if malformed
 */
static bool parse(char *body, size_t len, request_t *req, char **reason)
{
	char *line, *next, *eq;
	size_t i;

	for (i = 0; i < len; i++)
	{
		if (body[i] != '\n' && ((u_char)body[i] < 0x20 || body[i] == 0x7f))
		{
			*reason = "control characters in request";
			return FALSE;
		}
	}
	body[len] = '\0';
	req->command = body;
	next = strchr(body, '\n');
	if (next)
	{
		*next++ = '\0';
	}
	if (!*req->command)
	{
		*reason = "empty command";
		return FALSE;
	}
	for (line = next; line && *line; line = next)
	{
		next = strchr(line, '\n');
		if (next)
		{
			*next++ = '\0';
		}
		eq = strchr(line, '=');
		if (!eq || eq == line)
		{
			*reason = "argument not key=value";
			return FALSE;
		}
		if (req->count == MAX_ARGS)
		{
			*reason = "too many arguments";
			return FALSE;
		}
		*eq = '\0';
		req->keys[req->count] = line;
		req->values[req->count++] = eq + 1;
	}
	return TRUE;
}

/**
 * Send a response, bounded by the deadline
 */
static bool respond(stream_t *stream, int fd, response_t *res,
					uint64_t deadline)
{
	uint8_t header[5];
	size_t len = min(res->len, GIKEV2_CONTROL_MAX_RESPONSE);

	header[0] = res->status;
	htoun32(header + 1, len);
	return set_timeout(fd, deadline) &&
		   stream->write_all(stream, header, sizeof(header)) &&
		   (!len || stream->write_all(stream, res->text, len));
}

CALLBACK(on_accept, bool,
	private_gikev2_control_t *this, stream_t *stream)
{
	request_t req = {};
	response_t res = {};
	uint64_t deadline = gikev2_now_ms() + GIKEV2_CONTROL_TIMEOUT_MS;
	uint8_t header[4];
	char *body = NULL, *reason = NULL, *why = "";
	uint32_t len = 0;
	FILE *file;
	int fd;

	/* the stream's socket, to bound blocking reads and writes in time */
	file = stream->get_file(stream);
	if (!file)
	{
		DBG1(DBG_CFG, "gikev2: control connection unusable: %s",
			 strerror(errno));
		return FALSE;
	}
	fd = fileno(file);
	res.out = open_memstream(&res.text, &res.len);
	if (!res.out)
	{
		fclose(file);
		return FALSE;
	}
	if (!read_bounded(stream, fd, header, sizeof(header), deadline))
	{
		reason = "no request";
		why = errno == ETIMEDOUT ? ", timed out" : ", connection closed";
	}
	else
	{
		len = untoh32(header);
		if (!len || len > GIKEV2_CONTROL_MAX_REQUEST)
		{
			reason = "bad request length";
		}
		else
		{
			body = malloc(len + 1);
			if (!read_bounded(stream, fd, body, len, deadline))
			{
				reason = "request incomplete";
				why = errno == ETIMEDOUT ? ", timed out"
										 : ", connection closed";
			}
			else
			{
				parse(body, len, &req, &reason);
			}
		}
	}
	if (reason)
	{
		res.status = GIKEV2_CONTROL_FAILED;
		fprintf(res.out, "malformed request: %s\n", reason);
		DBG1(DBG_CFG, "gikev2: rejected control request (%u bytes): %s%s",
			 len, reason, why);
	}
	else if (streq(req.command, "list"))
	{
		cmd_list(this, &req, &res);
	}
	else if (streq(req.command, "rekey"))
	{
		cmd_rekey(this, &req, &res);
	}
	else if (streq(req.command, "exclude"))
	{
		cmd_exclude(this, &req, &res);
	}
	else if (streq(req.command, "readmit"))
	{
		cmd_readmit(this, &req, &res);
	}
	else if (streq(req.command, "register"))
	{
		cmd_register(this, &req, &res);
	}
	else
	{
		fail(&res, "unknown command '%s'", req.command);
	}
	fclose(res.out);
	/* a client gone or too slow (why) takes no answer */
	if (!*why && !respond(stream, fd, &res, deadline))
	{
		DBG1(DBG_CFG, "gikev2: sending control response failed: %s",
			 errno == EAGAIN || errno == EWOULDBLOCK ? "timed out"
													 : strerror(errno));
	}
	free(res.text);
	free(body);
	fclose(file);
	return FALSE;
}

METHOD(gikev2_control_t, destroy, void,
	private_gikev2_control_t *this)
{
	DESTROY_IF(this->service);
	free(this);
}

/*
 * Described in header
 */
gikev2_control_t *gikev2_control_create(gikev2_gcks_listener_t *gcks,
										gikev2_gm_listener_t *gm)
{
	private_gikev2_control_t *this;
	char *uri;

	INIT(this,
		.public = {
			.destroy = _destroy,
		},
		.gcks = gcks,
		.gm = gm,
	);

	uri = lib->settings->get_str(lib->settings, "%s.plugins.gikev2.socket",
								 GIKEV2_CONTROL_DEFAULT_URI, lib->ns);
	this->service = lib->streams->create_service(lib->streams, uri,
												 GIKEV2_CONTROL_BACKLOG);
	if (!this->service)
	{
		DBG1(DBG_CFG, "gikev2: creating control socket %s failed", uri);
		destroy(this);
		return NULL;
	}
	this->service->on_accept(this->service, on_accept, this,
							 JOB_PRIO_MEDIUM, GIKEV2_CONTROL_CONCURRENCY);
	DBG1(DBG_CFG, "gikev2: control socket %s (gikectl)", uri);
	return &this->public;
}
