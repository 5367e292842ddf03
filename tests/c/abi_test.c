/*
 * The C ABI of the gikev2 crate, end to end from C in one process: a GCKS
 * serving three groups (signed LKH multicast, implicit multicast with
 * AES-CBC/HMAC, inband), GMs registering through payload records, GSA_REKEY
 * datagrams moved from the GCKS to the GMs, timers, an exclusion, a leave,
 * and hostile or careless input. Built and run by tests/ffi_c.rs (under
 * valgrind when installed).
 *
 * Usage: abi_test <ed25519-key.pem> <scratch-dir>
 * Exit status 0 only if every check passed.
 */

#include "gikev2.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PRF_HMAC_SHA2_256 5
#define KW_5649_256 3
#define GSA_AUTH 39
#define GSA_REGISTRATION 40
#define PT_IDG 50
#define PT_NOTIFY 41
#define N_INVALID_SYNTAX 7
#define N_INVALID_GROUP_ID 45
#define N_AUTHORIZATION_FAILED 46
#define N_REGISTRATION_FAILED 49

static int failures;
static int checks;

#define CHECK(cond)                                                                \
	do {                                                                           \
		checks++;                                                                  \
		if (!(cond)) {                                                             \
			fprintf(stderr, "%s:%d: CHECK(%s) failed (last error: '%s')\n",        \
					__FILE__, __LINE__, #cond, gikev2_last_error());               \
			failures++;                                                            \
		}                                                                          \
	} while (0)

#define EXPECT(call, code)                                                         \
	do {                                                                           \
		gikev2_error_t e_ = (call);                                                \
		checks++;                                                                  \
		if (e_ != (code)) {                                                        \
			fprintf(stderr, "%s:%d: %s returned %d, expected %s (%d): '%s'\n",     \
					__FILE__, __LINE__, #call, (int)e_, #code, (int)(code),        \
					gikev2_last_error());                                          \
			failures++;                                                            \
		}                                                                          \
	} while (0)

#define OK(call) EXPECT(call, GIKEV2_OK)

/* Stops the program: what follows would dereference garbage. */
#define REQUIRE(cond)                                                              \
	do {                                                                           \
		if (!(cond)) {                                                             \
			fprintf(stderr, "%s:%d: REQUIRE(%s) failed (last error: '%s')\n",      \
					__FILE__, __LINE__, #cond, gikev2_last_error());               \
			exit(2);                                                               \
		}                                                                          \
	} while (0)

/* ---- logging ------------------------------------------------------------ */

typedef struct {
	int lines;
	int bad_levels;
	int max_seen;
	char last[256];
} log_state_t;

static void log_cb(int level, const char *msg, void *ctx)
{
	log_state_t *s = ctx;

	s->lines++;
	if (level < 0 || level > 3)
	{
		s->bad_levels++;
	}
	if (level > s->max_seen)
	{
		s->max_seen = level;
	}
	snprintf(s->last, sizeof(s->last), "%s", msg);
	if (getenv("ABI_TEST_VERBOSE"))
	{
		fprintf(stderr, "[gikev2 %d] %s\n", level, msg);
	}
}

/* ---- a model of each GM's kernel and sockets ---------------------------- */

#define MAX_SAS 16
#define MAX_LISTEN 8

typedef struct {
	gikev2_protocol_t protocol;
	uint32_t spi;
	gikev2_direction_t dir;
	uint16_t encr_id;
	uint16_t integ_id;
	uint8_t ekey[GIKEV2_MAX_KEY_LEN];
	size_t elen;
	uint8_t ikey[GIKEV2_MAX_KEY_LEN];
	size_t ilen;
	gikev2_ts_t dst;
} sa_t;

typedef struct {
	const char *identity;
	uint64_t member_id;
	int group;
	uint8_t sk_d[32];
	gikev2_gm_t *gm;
	sa_t sas[MAX_SAS];
	int nsas;
	uint8_t listen[MAX_LISTEN][GIKEV2_REKEY_SPI_LEN];
	gikev2_endpoint_t listen_dst[MAX_LISTEN];
	int nlisten;
	int reregister;
	gikev2_reregister_reason_t reason;
	int rekey_ok;
	int rekey_unknown;
	int rekey_errors;
} member_t;

#define MAX_MEMBERS 16

static uint64_t now;
static gikev2_gcks_t *gcks;
static member_t members[MAX_MEMBERS];
static int nmembers;
static int multicasts;
static int inband_rekeys;
static int closed;

static void wipe(void *p, size_t n)
{
	volatile uint8_t *v = p;

	while (n--)
	{
		*v++ = 0;
	}
}

static void forget_sa(member_t *m, int i)
{
	wipe(&m->sas[i], sizeof(m->sas[i]));
	m->sas[i] = m->sas[--m->nsas];
}

static int find_sa(member_t *m, gikev2_protocol_t proto, uint32_t spi, gikev2_direction_t dir)
{
	for (int i = 0; i < m->nsas; i++)
	{
		if (m->sas[i].protocol == proto && m->sas[i].spi == spi && m->sas[i].dir == dir)
		{
			return i;
		}
	}
	return -1;
}

/* Whether the GM's socket receives datagrams sent to dst: as a plugin
 * would, it listens on the address and port of its Rekey SAs and hands
 * every datagram to the GM, whatever its SPI. */
static bool listens(member_t *m, const gikev2_endpoint_t *dst)
{
	for (int i = 0; i < m->nlisten; i++)
	{
		if (m->listen_dst[i].family == dst->family && m->listen_dst[i].port == dst->port &&
			memcmp(m->listen_dst[i].addr, dst->addr, sizeof(dst->addr)) == 0)
		{
			return true;
		}
	}
	return false;
}

/* Takes every action of one GM, asking first with empty key buffers so the
 * size query and the "action stays queued" promise are exercised on every
 * INSTALL; the keys then land in buffers of exactly the size needed. */
static bool pump_gm(member_t *m)
{
	bool progress = false;

	for (;;)
	{
		gikev2_gm_action_t a, pattern;
		size_t elen = 0, ilen = 0;
		gikev2_error_t e;

		memset(&a, 0xa5, sizeof(a));
		memset(&pattern, 0xa5, sizeof(pattern));
		e = gikev2_gm_poll_action(m->gm, &a, NULL, &elen, NULL, &ilen);
		if (e == GIKEV2_ERR_BUFFER_TOO_SMALL)
		{
			uint8_t *ek = malloc(elen ? elen : 1), *ik = malloc(ilen ? ilen : 1);
			size_t need_e = elen, need_i = ilen;

			REQUIRE(ek && ik);
			CHECK(elen > 0 && elen <= GIKEV2_MAX_KEY_LEN && ilen <= GIKEV2_MAX_KEY_LEN);
			CHECK(memcmp(&a, &pattern, sizeof(a)) == 0); /* untouched */
			e = gikev2_gm_poll_action(m->gm, &a, ek, &elen, ik, &ilen);
			EXPECT(e, GIKEV2_OK);
			CHECK(a.kind == GIKEV2_GM_ACTION_INSTALL);
			CHECK(elen == need_e && ilen == need_i);
			if (e == GIKEV2_OK && m->nsas < MAX_SAS)
			{
				int i = find_sa(m, a.protocol, a.spi, a.direction);
				sa_t *sa = i >= 0 ? &m->sas[i] : &m->sas[m->nsas++];

				sa->protocol = a.protocol;
				sa->spi = a.spi;
				sa->dir = a.direction;
				sa->encr_id = a.encr_id;
				sa->integ_id = a.integ_id;
				memcpy(sa->ekey, ek, elen);
				sa->elen = elen;
				memcpy(sa->ikey, ik, ilen);
				sa->ilen = ilen;
				sa->dst = a.dst;
				CHECK(a.mode == GIKEV2_MODE_TUNNEL);
				CHECK(a.dst.family == GIKEV2_FAMILY_IPV4 && a.dst.start[0] == 239);
				CHECK(a.lifetime_secs > 0);
				CHECK(a.reserved[0] == 0 && a.reserved[3] == 0);
			}
			/* The keys are ours to wipe. */
			wipe(ek, elen);
			wipe(ik, ilen);
			free(ek);
			free(ik);
			progress = true;
			continue;
		}
		EXPECT(e, GIKEV2_OK);
		if (e != GIKEV2_OK)
		{
			return progress;
		}
		CHECK(elen == 0 && ilen == 0);
		switch (a.kind)
		{
			case GIKEV2_GM_ACTION_NONE:
				return progress;
			case GIKEV2_GM_ACTION_INSTALL:
				CHECK(!"INSTALL without keys");
				break;
			case GIKEV2_GM_ACTION_DELETE:
			{
				int i = find_sa(m, a.protocol, a.spi, a.direction);

				CHECK(i >= 0);
				if (i >= 0)
				{
					forget_sa(m, i);
				}
				break;
			}
			case GIKEV2_GM_ACTION_LISTEN_REKEY:
				CHECK(a.rekey_dst.family == GIKEV2_FAMILY_IPV4);
				CHECK(a.rekey_dst.addr[0] == 239 && a.rekey_dst.port == 848);
				REQUIRE(m->nlisten < MAX_LISTEN);
				memcpy(m->listen[m->nlisten], a.rekey_spi, GIKEV2_REKEY_SPI_LEN);
				m->listen_dst[m->nlisten++] = a.rekey_dst;
				{
					/* The Rekey SA's keys, as for Wireshark: sizes first. */
					gikev2_rekey_sa_algs_t algs;
					uint8_t ek[GIKEV2_MAX_KEY_LEN], ik[GIKEV2_MAX_KEY_LEN], bad[GIKEV2_REKEY_SPI_LEN];
					size_t kel = 0, kil = 0;

					EXPECT(gikev2_gm_rekey_sa_keys(m->gm, a.rekey_spi, &algs, NULL, &kel, NULL, &kil),
						   GIKEV2_ERR_BUFFER_TOO_SMALL);
					CHECK(kel > 0 && kel <= GIKEV2_MAX_KEY_LEN && kil <= GIKEV2_MAX_KEY_LEN);
					kel = kil = GIKEV2_MAX_KEY_LEN;
					OK(gikev2_gm_rekey_sa_keys(m->gm, a.rekey_spi, &algs, ek, &kel, ik, &kil));
					CHECK(algs.encr_id != 0 && algs.reserved[0] == 0 && algs.reserved[1] == 0);
					CHECK(algs.integ_id != 0 || kil == 0);
					wipe(ek, sizeof(ek));
					wipe(ik, sizeof(ik));
					memset(bad, 0, sizeof(bad));
					kel = kil = GIKEV2_MAX_KEY_LEN;
					EXPECT(gikev2_gm_rekey_sa_keys(m->gm, bad, &algs, ek, &kel, ik, &kil),
						   GIKEV2_ERR_UNKNOWN_SA);
					EXPECT(gikev2_gm_rekey_sa_keys(m->gm, NULL, &algs, ek, &kel, ik, &kil),
						   GIKEV2_ERR_NULL);
				}
				break;
			case GIKEV2_GM_ACTION_STOP_REKEY:
				for (int i = 0; i < m->nlisten; i++)
				{
					if (memcmp(m->listen[i], a.rekey_spi, GIKEV2_REKEY_SPI_LEN) == 0)
					{
						m->nlisten--;
						memcpy(m->listen[i], m->listen[m->nlisten], GIKEV2_REKEY_SPI_LEN);
						m->listen_dst[i] = m->listen_dst[m->nlisten];
						break;
					}
				}
				break;
			case GIKEV2_GM_ACTION_REREGISTER:
				m->reregister++;
				m->reason = a.reason;
				CHECK(a.reason != GIKEV2_REREGISTER_NONE);
				break;
			default:
				CHECK(!"unknown GM action kind");
				return progress;
		}
		progress = true;
	}
}

static member_t *member_by_id(uint64_t id)
{
	for (int i = 0; i < nmembers; i++)
	{
		if (members[i].member_id == id)
		{
			return &members[i];
		}
	}
	return NULL;
}

static void deliver(const gikev2_endpoint_t *dst, const uint8_t *dgram, size_t len)
{
	for (int i = 0; i < nmembers; i++)
	{
		member_t *m = &members[i];
		gikev2_error_t e;

		if (!m->gm || !listens(m, dst))
		{
			continue;
		}
		e = gikev2_gm_rekey(m->gm, now, dgram, len);
		if (e == GIKEV2_OK)
		{
			m->rekey_ok++;
		}
		else if (e == GIKEV2_ERR_UNKNOWN_SA)
		{
			/* retransmissions on a Rekey SA already replaced */
			m->rekey_unknown++;
		}
		else if (e != GIKEV2_ERR_REPLAY)
		{
			/* retransmissions after the first copy are replays by design */
			m->rekey_errors++;
		}
	}
}

/* Moves every queued action until nothing moves: GCKS multicasts reach the
 * GMs listening on their SPI, inband rekeys their member's GM. */
static void pump(void)
{
	bool progress = true;

	while (progress)
	{
		progress = false;
		for (;;)
		{
			gikev2_gcks_action_t a;
			size_t len = 0;
			uint8_t *data;
			gikev2_error_t e;

			e = gikev2_gcks_poll_action(gcks, &a, NULL, &len);
			if (e == GIKEV2_OK)
			{
				CHECK(len == 0);
				if (a.kind == GIKEV2_GCKS_ACTION_NONE)
				{
					break;
				}
				CHECK(a.kind == GIKEV2_GCKS_ACTION_CLOSE_IKE_SA);
				closed++;
				progress = true;
				continue;
			}
			EXPECT(e, GIKEV2_ERR_BUFFER_TOO_SMALL);
			REQUIRE(e == GIKEV2_ERR_BUFFER_TOO_SMALL && len > 0);
			data = malloc(len);
			REQUIRE(data);
			OK(gikev2_gcks_poll_action(gcks, &a, data, &len));
			progress = true;
			switch (a.kind)
			{
				case GIKEV2_GCKS_ACTION_MULTICAST:
					multicasts++;
					CHECK(a.dst.family == GIKEV2_FAMILY_IPV4 && a.dst.addr[0] == 239);
					CHECK(a.dst.port == 848);
					deliver(&a.dst, data, len);
					break;
				case GIKEV2_GCKS_ACTION_INBAND_REKEY:
				{
					member_t *m = member_by_id(a.member_id);

					inband_rekeys++;
					CHECK(m != NULL);
					if (m && m->gm)
					{
						OK(gikev2_gm_inband_rekey(m->gm, now, data, len, m->sk_d,
												  sizeof(m->sk_d), PRF_HMAC_SHA2_256,
												  KW_5649_256));
					}
					break;
				}
				default:
					CHECK(!"unexpected GCKS action with data");
			}
			free(data);
		}
		for (int i = 0; i < nmembers; i++)
		{
			if (members[i].gm && pump_gm(&members[i]))
			{
				progress = true;
			}
		}
	}
}

/* Advances the virtual clock by ms, running every timer due on the way. */
static void advance(uint64_t ms)
{
	uint64_t end = now + ms;

	for (;;)
	{
		uint64_t next = UINT64_MAX, at;
		bool has;

		OK(gikev2_gcks_handle_timeout(gcks, now));
		for (int i = 0; i < nmembers; i++)
		{
			if (members[i].gm)
			{
				OK(gikev2_gm_handle_timeout(members[i].gm, now));
			}
		}
		pump();
		OK(gikev2_gcks_poll_timeout(gcks, &has, &at));
		if (has && at > now && at <= end && at < next)
		{
			next = at;
		}
		for (int i = 0; i < nmembers; i++)
		{
			if (members[i].gm)
			{
				OK(gikev2_gm_poll_timeout(members[i].gm, &has, &at));
				if (has && at > now && at <= end && at < next)
				{
					next = at;
				}
			}
		}
		if (next == UINT64_MAX)
		{
			break;
		}
		now = next;
	}
	now = end;
	OK(gikev2_gcks_handle_timeout(gcks, now));
	for (int i = 0; i < nmembers; i++)
	{
		if (members[i].gm)
		{
			OK(gikev2_gm_handle_timeout(members[i].gm, now));
		}
	}
	pump();
}

/* ---- registration -------------------------------------------------------- */

static member_t *new_member(const char *identity, const char *group_id, const char *role,
							int group)
{
	const char *keys[] = {"id", "role"};
	const char *values[] = {group_id, role};
	member_t *m;

	REQUIRE(nmembers < MAX_MEMBERS);
	m = &members[nmembers++];
	memset(m, 0, sizeof(*m));
	m->identity = identity;
	m->member_id = (uint64_t)nmembers + 100;
	m->group = group;
	for (size_t i = 0; i < sizeof(m->sk_d); i++)
	{
		m->sk_d[i] = (uint8_t)(nmembers * 31 + i);
	}
	OK(gikev2_gm_new(keys, values, 2, &m->gm));
	REQUIRE(m->gm);
	return m;
}

/* One registration exchange, payload records from the GM to the GCKS and
 * back; returns the GM's verdict. */
static gikev2_error_t register_member(member_t *m, uint8_t exchange, uint16_t *refused)
{
	uint8_t req[2048], resp[16384];
	size_t req_len = sizeof(req), resp_len = sizeof(resp);

	OK(gikev2_gm_registration_payloads(m->gm, req, &req_len));
	CHECK(req_len > 4 && req[0] == PT_IDG);
	OK(gikev2_gcks_registration(gcks, now, m->member_id, &m->identity, 1, NULL, exchange, req, req_len,
								m->sk_d, sizeof(m->sk_d), PRF_HMAC_SHA2_256, KW_5649_256,
								resp, &resp_len));
	return gikev2_gm_registration_response(m->gm, now, exchange, resp, resp_len, m->sk_d,
										   sizeof(m->sk_d), PRF_HMAC_SHA2_256, KW_5649_256,
										   refused);
}

/* The inbound ESP SAs every listed member of `group` holds, which must
 * agree in SPI and keys; returns how many there are, the first in *out. */
static int common_tek(int group, int skip, sa_t *out)
{
	member_t *first = NULL;
	int count = 0;

	for (int i = 0; i < nmembers; i++)
	{
		member_t *m = &members[i];
		int n = 0;

		if (m->group != group || i == skip || !m->gm)
		{
			continue;
		}
		for (int j = 0; j < m->nsas; j++)
		{
			sa_t *sa = &m->sas[j];

			if (sa->dir != GIKEV2_DIR_IN || sa->protocol != GIKEV2_PROTO_ESP)
			{
				continue;
			}
			n++;
			if (!first)
			{
				continue;
			}
			int k = find_sa(first, sa->protocol, sa->spi, sa->dir);
			CHECK(k >= 0);
			if (k >= 0)
			{
				sa_t *ref = &first->sas[k];
				CHECK(ref->elen == sa->elen && memcmp(ref->ekey, sa->ekey, sa->elen) == 0);
				CHECK(ref->ilen == sa->ilen && memcmp(ref->ikey, sa->ikey, sa->ilen) == 0);
			}
		}
		if (!first)
		{
			first = m;
			count = n;
			for (int j = 0; j < m->nsas; j++)
			{
				if (m->sas[j].dir == GIKEV2_DIR_IN && m->sas[j].protocol == GIKEV2_PROTO_ESP)
				{
					*out = m->sas[j];
				}
			}
		}
		else
		{
			CHECK(n == count);
		}
	}
	return count;
}

static bool holds_spi(member_t *m, uint32_t spi)
{
	for (int i = 0; i < m->nsas; i++)
	{
		if (m->sas[i].spi == spi)
		{
			return true;
		}
	}
	return false;
}

static int member_lines(const char *status)
{
	int n = 0;

	for (const char *p = status; (p = strstr(p, "  member ")); p++)
	{
		n++;
	}
	return n;
}

static char *gcks_status(void)
{
	size_t len = 0;
	char *text;

	EXPECT(gikev2_gcks_status(gcks, now, NULL, &len), GIKEV2_ERR_BUFFER_TOO_SMALL);
	REQUIRE(len > 0);
	text = malloc(len);
	REQUIRE(text);
	OK(gikev2_gcks_status(gcks, now, text, &len));
	CHECK(strlen(text) + 1 == len);
	return text;
}

/* ---- last error per thread ----------------------------------------------- */

static void *other_thread(void *arg)
{
	(void)arg;
	EXPECT(gikev2_gcks_rekey(NULL, 0, "x"), GIKEV2_ERR_NULL);
	CHECK(strstr(gikev2_last_error(), "gcks is NULL") != NULL);
	/* a handle shared between threads */
	for (int i = 0; i < 20; i++)
	{
		bool has;
		uint64_t at;

		OK(gikev2_gcks_poll_timeout(gcks, &has, &at));
	}
	return NULL;
}

/* ---- the scenario --------------------------------------------------------- */

static void add_groups(const char *key_path, const char *dir)
{
	const char *a_keys[] = {
		"id", "members", "senders", "sender_id_bits", "atd", "dtd",
		"rekey.address", "rekey.source", "rekey.proposal", "rekey.auth", "rekey.key",
		"rekey.lifetime", "key_management", "lkh_degree",
		"tek.feed.destination", "tek.feed.source", "tek.feed.single_sender",
	};
	const char *a_values[] = {
		"market-data", "*@example.com", "sender*@example.com", "8", "2s", "5s",
		"239.1.1.2:848", "10.1.0.1:848", "aes256gcm16-kwaes256", "signature", key_path,
		"2h", "lkh", "2",
		"239.1.1.1[udp/5000]", "10.1.0.0/16", "yes",
	};
	const char *b_keys[] = {
		"id", "members", "rekey.address", "rekey.auth", "dtd",
		"tek.video.destination", "tek.video.proposal",
	};
	const char *b_values[] = {
		"fqdn:video.example.com", "*@example.com", "239.1.2.2:848", "implicit", "5s",
		"239.1.2.1[udp/6000]", "aes128-sha256",
	};
	const char *c_keys[] = {"id", "members", "delivery", "key_management",
							"tek.x.destination", "tek.x.proposal"};
	const char *c_values[] = {"inband-grp", "*@example.com", "inband", "flat",
							  "239.1.3.1[udp/7000]", "aes128-sha256"};
	char missing[512];
	size_t na = sizeof(a_keys) / sizeof(a_keys[0]);

	/* configuration errors name the key (and the file) */
	{
		const char *k[] = {"id", "members", "colour"};
		const char *v[] = {"g", "*", "blue"};

		EXPECT(gikev2_gcks_add_group(gcks, now, k, v, 3), GIKEV2_ERR_CONFIG);
		CHECK(strncmp(gikev2_last_error(), "colour: ", 8) == 0);
		EXPECT(gikev2_gcks_add_group(gcks, now, NULL, v, 3), GIKEV2_ERR_NULL);
		k[2] = NULL;
		EXPECT(gikev2_gcks_add_group(gcks, now, k, v, 3), GIKEV2_ERR_NULL);
		CHECK(strstr(gikev2_last_error(), "keys[2]") != NULL);
	}
	snprintf(missing, sizeof(missing), "%s/no-such-key.pem", dir);
	a_values[10] = missing;
	EXPECT(gikev2_gcks_add_group(gcks, now, a_keys, a_values, na), GIKEV2_ERR_CONFIG);
	CHECK(strncmp(gikev2_last_error(), "rekey.key: ", 11) == 0);
	CHECK(strstr(gikev2_last_error(), missing) != NULL);
	CHECK(strstr(gikev2_last_error(), "No such file") != NULL);
	a_values[10] = key_path;

	OK(gikev2_gcks_add_group(gcks, now, a_keys, a_values, na));
	CHECK(gikev2_last_error()[0] == '\0');
	EXPECT(gikev2_gcks_add_group(gcks, now, a_keys, a_values, na), GIKEV2_ERR_EXISTS);
	OK(gikev2_gcks_add_group(gcks, now, b_keys, b_values, sizeof(b_keys) / sizeof(b_keys[0])));
	OK(gikev2_gcks_add_group(gcks, now, c_keys, c_values, sizeof(c_keys) / sizeof(c_keys[0])));
}

static void bad_input(void)
{
	member_t *m = &members[0];
	uint8_t req[2048], resp[16384], small[8];
	size_t req_len = sizeof(req), resp_len = sizeof(resp), len;
	uint16_t refused = 1234;
	gikev2_gcks_action_t ga;
	gikev2_gm_action_t gma;
	bool has;
	uint64_t at;

	/* NULL handles and out-pointers */
	EXPECT(gikev2_gcks_new(NULL), GIKEV2_ERR_NULL);
	EXPECT(gikev2_gm_new(NULL, NULL, 0, NULL), GIKEV2_ERR_NULL);
	EXPECT(gikev2_gcks_handle_timeout(NULL, now), GIKEV2_ERR_NULL);
	CHECK(strstr(gikev2_last_error(), "NULL") != NULL);
	EXPECT(gikev2_gcks_poll_timeout(gcks, NULL, &at), GIKEV2_ERR_NULL);
	EXPECT(gikev2_gm_poll_timeout(m->gm, &has, NULL), GIKEV2_ERR_NULL);
	EXPECT(gikev2_gcks_poll_action(gcks, NULL, resp, &resp_len), GIKEV2_ERR_NULL);
	EXPECT(gikev2_gcks_poll_action(gcks, &ga, resp, NULL), GIKEV2_ERR_NULL);
	len = 10;
	EXPECT(gikev2_gcks_poll_action(gcks, &ga, NULL, &len), GIKEV2_ERR_NULL);
	EXPECT(gikev2_gm_poll_action(m->gm, &gma, NULL, NULL, NULL, NULL), GIKEV2_ERR_NULL);
	EXPECT(gikev2_gm_rekey(NULL, now, small, 1), GIKEV2_ERR_NULL);
	EXPECT(gikev2_gm_rekey(m->gm, now, NULL, 1), GIKEV2_ERR_NULL);
	EXPECT(gikev2_gcks_exclude(gcks, now, NULL, 1), GIKEV2_ERR_NULL);
	EXPECT(gikev2_gm_status(m->gm, now, NULL, NULL), GIKEV2_ERR_NULL);
	gikev2_gcks_destroy(NULL);
	gikev2_gm_destroy(NULL);

	/* a GM's own request, then damaged */
	OK(gikev2_gm_registration_payloads(m->gm, req, &req_len));
	len = 0;
	EXPECT(gikev2_gm_registration_payloads(m->gm, NULL, &len), GIKEV2_ERR_BUFFER_TOO_SMALL);
	CHECK(len == req_len);
	len = 3;
	EXPECT(gikev2_gm_registration_payloads(m->gm, small, &len), GIKEV2_ERR_BUFFER_TOO_SMALL);
	CHECK(len == req_len);

	resp_len = sizeof(resp);
	EXPECT(gikev2_gcks_registration(gcks, now, m->member_id, &m->identity, 1, NULL, GSA_AUTH, req,
									req_len - 1, m->sk_d, 32, PRF_HMAC_SHA2_256, KW_5649_256,
									resp, &resp_len),
		   GIKEV2_ERR_DECODE);
	/* the answer to send: one INVALID_SYNTAX notification record */
	CHECK(resp_len == 8 && resp[0] == PT_NOTIFY && resp[2] == 0 && resp[3] == 4);
	CHECK(resp[6] == 0 && resp[7] == N_INVALID_SYNTAX);
	resp_len = sizeof(resp);
	EXPECT(gikev2_gcks_registration(gcks, now, m->member_id, &m->identity, 1, NULL, GSA_AUTH, NULL,
									req_len, m->sk_d, 32, PRF_HMAC_SHA2_256, KW_5649_256,
									resp, &resp_len),
		   GIKEV2_ERR_NULL);
	EXPECT(gikev2_gcks_registration(gcks, now, m->member_id, NULL, 1, NULL, GSA_AUTH, req, req_len,
									m->sk_d, 32, PRF_HMAC_SHA2_256, KW_5649_256, resp,
									&resp_len),
		   GIKEV2_ERR_NULL);
	EXPECT(gikev2_gcks_registration(gcks, now, m->member_id, &m->identity, 1, NULL, 35, req, req_len,
									m->sk_d, 32, PRF_HMAC_SHA2_256, KW_5649_256, resp,
									&resp_len),
		   GIKEV2_ERR_INVALID_ARG);
	EXPECT(gikev2_gcks_registration(gcks, now, m->member_id, &m->identity, 1, NULL, GSA_AUTH, req,
									req_len, m->sk_d, 32, 99, KW_5649_256, resp, &resp_len),
		   GIKEV2_ERR_UNSUPPORTED);
	EXPECT(gikev2_gcks_registration(gcks, now, m->member_id, &m->identity, 1, NULL, GSA_AUTH, req,
									req_len, m->sk_d, 0, PRF_HMAC_SHA2_256, KW_5649_256,
									resp, &resp_len),
		   GIKEV2_ERR_INVALID_ARG);

	/* a GM given damaged responses stays unchanged */
	EXPECT(gikev2_gm_registration_response(m->gm, now, GSA_AUTH, req, 3, m->sk_d, 32,
										   PRF_HMAC_SHA2_256, KW_5649_256, &refused),
		   GIKEV2_ERR_DECODE);
	CHECK(refused == 0);
	EXPECT(gikev2_gm_registration_response(m->gm, now, GSA_AUTH, NULL, 0, m->sk_d, 32,
										   PRF_HMAC_SHA2_256, KW_5649_256, NULL),
		   GIKEV2_ERR_DECODE);
	EXPECT(gikev2_gm_registration_response(m->gm, now, GSA_AUTH, req, req_len, m->sk_d, 32,
										   PRF_HMAC_SHA2_256, 77, NULL),
		   GIKEV2_ERR_UNSUPPORTED);
	/* a GSA_REKEY for nothing it holds, and garbage */
	memset(small, 0x11, sizeof(small));
	EXPECT(gikev2_gm_rekey(m->gm, now, small, sizeof(small)), GIKEV2_ERR_DECODE);
	EXPECT(gikev2_gm_inband_rekey(m->gm, now, NULL, 0, m->sk_d, 32, PRF_HMAC_SHA2_256,
								  KW_5649_256),
		   GIKEV2_ERR_DECODE);
	/* nothing was queued by any of this */
	len = 0;
	OK(gikev2_gm_poll_action(m->gm, &gma, NULL, &len, NULL, &len));
	CHECK(gma.kind == GIKEV2_GM_ACTION_NONE);

	/* bad group names and unknown things */
	EXPECT(gikev2_gcks_rekey(gcks, now, ""), GIKEV2_ERR_INVALID_ARG);
	EXPECT(gikev2_gcks_rekey(gcks, now, "no-such-group"), GIKEV2_ERR_NOT_FOUND);
	EXPECT(gikev2_gcks_remove_group(gcks, "no-such-group"), GIKEV2_ERR_NOT_FOUND);
	EXPECT(gikev2_gcks_exclude(gcks, now, "market-data", 999999), GIKEV2_ERR_NOT_FOUND);
	{
		const char *k[] = {"id", "role"};
		const char *v[] = {"g", "boss"};
		gikev2_gm_t *gm = (gikev2_gm_t *)&len; /* must stay untouched */

		EXPECT(gikev2_gm_new(k, v, 2, &gm), GIKEV2_ERR_CONFIG);
		CHECK(strncmp(gikev2_last_error(), "role: ", 6) == 0);
		CHECK(gm == (gikev2_gm_t *)&len);
	}
}

int main(int argc, char **argv)
{
	log_state_t log = {0};
	sa_t before, after, next, b_sa;
	member_t *x, *b0, *b1, *c0, *stranger, *lost;
	int a_first, a_count = 5, excluded;
	uint16_t refused;
	char *status;
	pthread_t t;

	if (argc != 3)
	{
		fprintf(stderr, "usage: %s <ed25519-key.pem> <scratch-dir>\n", argv[0]);
		return 2;
	}
	CHECK(gikev2_abi_version() == GIKEV2_ABI_VERSION);
	CHECK(strlen(gikev2_version()) > 0);
	CHECK(gikev2_last_error()[0] == '\0');
	OK(gikev2_set_log_callback(log_cb, &log, 4));

	OK(gikev2_gcks_new(&gcks));
	REQUIRE(gcks);
	add_groups(argv[1], argv[2]);
	CHECK(log.lines > 0); /* "group ... ready" */
	CHECK(log.bad_levels == 0);

	/* group A: signed rekeys, LKH; four receivers and one sender */
	a_first = nmembers;
	new_member("gm0@example.com", "market-data", "receiver", 0);
	new_member("gm1@example.com", "market-data", "receiver", 0);
	new_member("gm2@example.com", "market-data", "receiver", 0);
	new_member("gm3@example.com", "market-data", "receiver", 0);
	new_member("sender1@example.com", "market-data", "both", 0);
	bad_input();

	/* The first registration with a response buffer too small: processed
	 * once, kept, and handed out on the identical retry. */
	{
		member_t *m = &members[a_first];
		uint8_t req[2048], resp[16384];
		size_t req_len = sizeof(req), resp_len = 16, need;

		OK(gikev2_gm_registration_payloads(m->gm, req, &req_len));
		EXPECT(gikev2_gcks_registration(gcks, now, m->member_id, &m->identity, 1, NULL, GSA_AUTH, req,
										req_len, m->sk_d, 32, PRF_HMAC_SHA2_256, KW_5649_256,
										resp, &resp_len),
			   GIKEV2_ERR_BUFFER_TOO_SMALL);
		need = resp_len;
		CHECK(need > 16 && need < sizeof(resp));
		resp_len = sizeof(resp);
		OK(gikev2_gcks_registration(gcks, now, m->member_id, &m->identity, 1, NULL, GSA_AUTH, req,
									req_len, m->sk_d, 32, PRF_HMAC_SHA2_256, KW_5649_256, resp,
									&resp_len));
		CHECK(resp_len == need);
		OK(gikev2_gm_registration_response(m->gm, now, GSA_AUTH, resp, resp_len, m->sk_d, 32,
										   PRF_HMAC_SHA2_256, KW_5649_256, NULL));
		status = gcks_status();
		CHECK(member_lines(status) == 1);
		free(status);
		pump();
		CHECK(m->nsas == 1 && m->nlisten == 1);
	}
	for (int i = a_first + 1; i < a_first + a_count; i++)
	{
		refused = 1;
		OK(register_member(&members[i], GSA_AUTH, &refused));
		CHECK(refused == 0);
		pump();
	}
	/* the sender holds the outbound SA: a single sender, whose 32-bit
	 * sequential numbers keep its IVs apart */
	{
		member_t *s = &members[a_first + 4];
		bool found = false;

		for (int j = 0; j < s->nsas; j++)
		{
			if (s->sas[j].dir == GIKEV2_DIR_OUT)
			{
				found = true;
				CHECK(s->sas[j].encr_id == 20 && s->sas[j].elen == 36); /* AES-GCM-256 */
				CHECK(s->sas[j].integ_id == 0 && s->sas[j].ilen == 0);
			}
		}
		CHECK(found);
	}

	/* group B: implicit rekeys, AES-CBC with HMAC-SHA-256 */
	b0 = new_member("gm-b0@example.com", "fqdn:video.example.com", "receiver", 1);
	b1 = new_member("gm-b1@example.com", "fqdn:video.example.com", "receiver", 1);
	OK(register_member(b0, GSA_AUTH, NULL));
	OK(register_member(b1, GSA_REGISTRATION, NULL));
	pump();
	/* group C: inband */
	c0 = new_member("gm-c0@example.com", "inband-grp", "receiver", 2);
	OK(register_member(c0, GSA_AUTH, NULL));
	pump();
	CHECK(c0->nsas == 1 && c0->nlisten == 0);

	/* refusals come back as REFUSED with the GCKS's notification */
	stranger = new_member("mallory@evil.example", "market-data", "receiver", -1);
	refused = 0;
	EXPECT(register_member(stranger, GSA_AUTH, &refused), GIKEV2_ERR_REFUSED);
	CHECK(refused == N_AUTHORIZATION_FAILED);
	lost = new_member("gm9@example.com", "no-such-group", "receiver", -1);
	refused = 0;
	EXPECT(register_member(lost, GSA_AUTH, &refused), GIKEV2_ERR_REFUSED);
	CHECK(refused == N_INVALID_GROUP_ID);
	pump();
	CHECK(stranger->nsas == 0 && lost->nsas == 0);

	/* the join flush moves everyone to the Rekey SA joiners were given */
	advance(2000);
	CHECK(multicasts > 0);
	CHECK(common_tek(0, -1, &before) == 1);
	CHECK(before.elen == 36 && before.encr_id == 20);
	for (int i = a_first; i < a_first + a_count; i++)
	{
		CHECK(members[i].rekey_errors == 0);
		CHECK(members[i].nlisten >= 1);
	}
	CHECK(common_tek(1, -1, &b_sa) == 1);
	CHECK(b_sa.encr_id == 12 && b_sa.elen == 16);   /* AES-128-CBC */
	CHECK(b_sa.integ_id == 12 && b_sa.ilen == 32);  /* HMAC-SHA-256-128 */

	status = gcks_status();
	CHECK(strstr(status, "group market-data: 5 member(s)") != NULL);
	CHECK(strstr(status, "group fqdn:video.example.com: 2 member(s)") != NULL);
	CHECK(strstr(status, "member 101 gm0@example.com receiver") != NULL);
	CHECK(strstr(status, "sender1@example.com sender") != NULL);
	CHECK(strstr(status, "tek ESP spi 0x") != NULL);
	free(status);
	{
		char text[2048], tiny[4];
		size_t len = sizeof(tiny);

		EXPECT(gikev2_gm_status(members[a_first].gm, now, tiny, &len),
			   GIKEV2_ERR_BUFFER_TOO_SMALL);
		CHECK(len > sizeof(tiny));
		len = sizeof(text);
		OK(gikev2_gm_status(members[a_first].gm, now, text, &len));
		CHECK(strncmp(text, "group market-data: registered", 29) == 0);
		CHECK(strstr(text, "\n  rekey SA ") != NULL);
		CHECK(strstr(text, "\n  tek ESP spi 0x") != NULL && strstr(text, " in expires in ") != NULL);
	}

	/* a tampered GSA_REKEY changes nothing */
	{
		member_t *m = &members[a_first];
		int before_ok = m->rekey_ok, before_err = m->rekey_errors;

		OK(gikev2_gcks_rekey(gcks, now, "market-data"));
		/* take the datagram by hand and flip a bit in its ICV */
		gikev2_gcks_action_t a;
		uint8_t dgram[65536];
		size_t len = sizeof(dgram);

		OK(gikev2_gcks_poll_action(gcks, &a, dgram, &len));
		CHECK(a.kind == GIKEV2_GCKS_ACTION_MULTICAST);
		CHECK(a.src.family == GIKEV2_FAMILY_IPV4 && a.src.addr[0] == 10 && a.src.port == 848);
		dgram[len - 1] ^= 1;
		EXPECT(gikev2_gm_rekey(m->gm, now, dgram, len), GIKEV2_ERR_CRYPTO);
		EXPECT(gikev2_gm_rekey(m->gm, now, dgram, len / 2), GIKEV2_ERR_DECODE);
		dgram[len - 1] ^= 1;
		deliver(&a.dst, dgram, len);
		CHECK(m->rekey_ok == before_ok + 1 && m->rekey_errors == before_err);
		/* the same again: a replay */
		EXPECT(gikev2_gm_rekey(m->gm, now, dgram, len), GIKEV2_ERR_REPLAY);
		pump();
		advance(10000);
		CHECK(common_tek(0, -1, &after) == 1);
		CHECK(after.spi != before.spi);
		before = after;
	}

	/* exclusion: everyone but x follows, x cannot */
	excluded = a_first + 2;
	x = &members[excluded];
	OK(gikev2_gcks_exclude(gcks, now, "market-data", x->member_id));
	pump();
	advance(10000);
	CHECK(common_tek(0, excluded, &after) == 1);
	CHECK(after.spi != before.spi);
	CHECK(memcmp(after.ekey, before.ekey, after.elen) != 0);
	CHECK(!holds_spi(x, after.spi));
	CHECK(x->rekey_errors > 0);
	/* Excluded, or (once a message on the announced next Rekey SA
	 * arrives) "a rekey was lost": either way it must register again. */
	CHECK(x->reregister > 0);
	CHECK(x->reason == GIKEV2_REREGISTER_EXCLUDED || x->reason == GIKEV2_REREGISTER_LOST_REKEY);
	for (int i = a_first; i < a_first + a_count; i++)
	{
		if (i != excluded)
		{
			CHECK(members[i].rekey_errors == 0);
			CHECK(members[i].reregister == 0);
		}
	}
	/* the next rekey: still everyone but x */
	OK(gikev2_gcks_rekey(gcks, now, "market-data"));
	pump();
	advance(10000);
	CHECK(common_tek(0, excluded, &next) == 1);
	CHECK(next.spi != after.spi);
	CHECK(!holds_spi(x, next.spi));
	status = gcks_status();
	CHECK(strstr(status, "group market-data: 4 member(s)") != NULL);
	free(status);

	/* group B: b1 leaves (Figure 8); b0 follows the rekey that follows */
	{
		uint8_t req[256], resp[256];
		size_t req_len = sizeof(req), resp_len = sizeof(resp);

		OK(gikev2_gm_leave_payloads(b1->gm, N_REGISTRATION_FAILED, req, &req_len));
		CHECK(req[0] == PT_IDG);
		OK(gikev2_gcks_registration(gcks, now, b1->member_id, &b1->identity, 1, NULL, GSA_REGISTRATION,
									req, req_len, b1->sk_d, 32, PRF_HMAC_SHA2_256,
									KW_5649_256, resp, &resp_len));
		CHECK(resp_len == 0);
		gikev2_gm_destroy(b1->gm);
		b1->gm = NULL;
		pump();
		OK(gikev2_gcks_rekey(gcks, now, "fqdn:video.example.com"));
		pump();
		advance(10000);
		CHECK(common_tek(1, -1, &after) == 1);
		CHECK(after.spi != b_sa.spi && b0->rekey_errors == 0);
		status = gcks_status();
		CHECK(strstr(status, "group fqdn:video.example.com: 1 member(s)") != NULL);
		free(status);
	}

	/* group C: an inband rekey, then the IKE SA goes down */
	{
		uint32_t old = c0->sas[0].spi;

		OK(gikev2_gcks_rekey(gcks, now, "inband-grp"));
		pump();
		CHECK(inband_rekeys == 1);
		advance(10000);
		bool fresh = false;

		for (int j = 0; j < c0->nsas; j++)
		{
			fresh |= c0->sas[j].spi != old;
		}
		CHECK(fresh);
		CHECK(c0->rekey_errors == 0 && c0->nlisten == 0);
		OK(gikev2_gcks_ike_sa_down(gcks, now, c0->member_id));
		pump();
		EXPECT(gikev2_gcks_exclude(gcks, now, "inband-grp", c0->member_id),
			   GIKEV2_ERR_NOT_FOUND);
	}

	/* last error is per thread; a handle may be shared */
	OK(gikev2_gcks_poll_timeout(gcks, &(bool){false}, &(uint64_t){0}));
	REQUIRE(pthread_create(&t, NULL, other_thread, NULL) == 0);
	REQUIRE(pthread_join(t, NULL) == 0);
	CHECK(gikev2_last_error()[0] == '\0');

	/* removing a group; the log callback goes quiet once removed */
	OK(gikev2_gcks_remove_group(gcks, "inband-grp"));
	EXPECT(gikev2_gcks_remove_group(gcks, "inband-grp"), GIKEV2_ERR_NOT_FOUND);
	CHECK(log.bad_levels == 0 && log.max_seen >= 1);
	OK(gikev2_set_log_callback(NULL, NULL, 0));
	{
		int lines = log.lines;

		OK(gikev2_gcks_rekey(gcks, now, "market-data"));
		pump();
		advance(10000);
		CHECK(log.lines == lines);
	}

	for (int i = 0; i < nmembers; i++)
	{
		for (int j = 0; j < members[i].nsas; j++)
		{
			wipe(&members[i].sas[j], sizeof(sa_t));
		}
		gikev2_gm_destroy(members[i].gm);
	}
	gikev2_gcks_destroy(gcks);

	printf("abi_test: %d checks, %d failed; %d multicasts, %d inband rekeys, %d log lines\n",
		   checks, failures, multicasts, inband_rekeys, log.lines);
	return failures ? 1 : 0;
}
