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

/**
 * @defgroup gikev2_control gikev2_control
 * @{ @ingroup gikev2
 *
 * Control socket of the plugin, used by gikectl (vici cannot be extended by
 * another plugin). It listens on charon.plugins.gikev2.socket, by default
 * unix://${piddir}/charon.gikev2, created like vici's socket (owner root
 * or charon's user, group charon's group, no access for others).
 *
 * Protocol: one request and one response per connection.
 *
 *   request:  length (4 octets, big endian) | body (length octets)
 *   response: status (1 octet) | length (4 octets, big endian) | text
 *
 * The request body (1 to GIKEV2_CONTROL_MAX_REQUEST octets, printable
 * UTF-8 and newlines only) is a command on its first line, followed by
 * one "key=value" argument per line:
 *
 *   list                              groups (GCKS) and memberships (GM)
 *   rekey\ngroup=<group>              rekey a group's TEKs now (GCKS)
 *   rekey\ngroup=<group>\nkek=yes      replace its Rekey SA (KEK) now
 *   exclude\ngroup=<group>\nmember=<member>
 *                                     exclude a member (GCKS, LKH groups)
 *   readmit\ngroup=<group>\nmember=<identity>
 *                                     let an excluded member back in
 *   register\nmembership=<name>       initiate a membership's connection (GM)
 *
 * where <group> is the group's settings section name (groups.<name>) or its
 * group ID (its id setting), <member> a member's identity as list shows it
 * or its member ID, and <name> a membership's section name or group ID.
 *
 * Status is GIKEV2_CONTROL_OK or GIKEV2_CONTROL_FAILED; the text (UTF-8,
 * not NUL-terminated, at most GIKEV2_CONTROL_MAX_RESPONSE octets) is what
 * the client prints: the listing or a confirmation on success, the reason
 * on failure. The request must arrive, and the response be taken, within
 * GIKEV2_CONTROL_TIMEOUT_MS; otherwise, and on malformed requests, the
 * connection is closed (with a failure response if it can still be sent)
 * and one line is logged.
 */

#ifndef GIKEV2_CONTROL_H_
#define GIKEV2_CONTROL_H_

/* gikectl includes only the protocol (GIKEV2_CONTROL_PROTOCOL_ONLY) */

/**
 * Largest request body accepted.
 */
#define GIKEV2_CONTROL_MAX_REQUEST 4096

/**
 * Largest response text sent.
 */
#define GIKEV2_CONTROL_MAX_RESPONSE (16 * 1024 * 1024)

/**
 * Time a client has to send its request and take the response (ms).
 */
#define GIKEV2_CONTROL_TIMEOUT_MS 5000

/**
 * Response status: success.
 */
#define GIKEV2_CONTROL_OK 0

/**
 * Response status: failure, the text says why.
 */
#define GIKEV2_CONTROL_FAILED 1

#ifndef GIKEV2_CONTROL_PROTOCOL_ONLY

#include "gikev2_gcks.h"
#include "gikev2_gm.h"

typedef struct gikev2_control_t gikev2_control_t;

/**
 * Control socket serving gikectl.
 */
struct gikev2_control_t {

	/**
	 * Destroy a gikev2_control_t, waiting for running requests.
	 */
	void (*destroy)(gikev2_control_t *this);
};

/**
 * Create the control socket (charon.plugins.gikev2.socket).
 *
 * @param gcks			GCKS listener, must outlive the control socket
 * @param gm			GM listener, must outlive the control socket
 * @return				control socket, NULL if it could not be created
 */
gikev2_control_t *gikev2_control_create(gikev2_gcks_listener_t *gcks,
										gikev2_gm_listener_t *gm);

#endif /* GIKEV2_CONTROL_PROTOCOL_ONLY */

#endif /** GIKEV2_CONTROL_H_ @}*/
