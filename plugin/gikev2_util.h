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
 * @defgroup gikev2_util gikev2_util
 * @{ @ingroup gikev2
 */

#ifndef GIKEV2_UTIL_H_
#define GIKEV2_UTIL_H_

#include <daemon.h>
#include <encoding/message.h>
#include <networking/host.h>

#include "gikev2.h"

/**
 * Monotonic millisecond clock handed to the core as now_ms.
 *
 * @return				milliseconds since an arbitrary point
 */
uint64_t gikev2_now_ms();

/**
 * Collect payloads of a plain message as payload records of the core.
 *
 * @param message		plain message to read
 * @param with_sa		TRUE to include an opaque SA payload (SAg)
 * @return				allocated records, chunk_empty if none
 */
chunk_t gikev2_records_from_message(message_t *message, bool with_sa);

/**
 * Add the payloads described by payload records to a plain message.
 *
 * @param message		message to add payloads to
 * @param records		payload records of the core
 * @return				FALSE if the records were malformed
 */
bool gikev2_records_to_message(message_t *message, chunk_t records);

/**
 * Find the first error notification (type < 16384) in payload records.
 *
 * @param records		payload records of the core
 * @return				notify type, 0 if none
 */
uint16_t gikev2_records_error(chunk_t records);

/**
 * Collect the key/value settings below a section, keys relative to it.
 *
 * @param section		section, e.g. "charon.plugins.gikev2.groups.a"
 * @param skip			key to leave out (plugin-only), or NULL
 * @param keys			allocated array of allocated keys
 * @param values		allocated array of allocated values
 * @return				number of settings
 */
int gikev2_settings_collect(char *section, char *skip, char ***keys,
							char ***values);

/**
 * Free what gikev2_settings_collect() returned.
 *
 * @param keys			keys
 * @param values		values
 * @param count			number of settings
 */
void gikev2_settings_free(char **keys, char **values, int count);

/**
 * Get the PRF and Key Wrap Algorithm an IKE_SA negotiated, which the core
 * needs to derive and unwrap its keys.
 *
 * @param ike_sa		IKE_SA
 * @param prf			PRF transform ID (out, left as is if none)
 * @param kwa			KWA transform ID (out, left as is if none)
 */
void gikev2_ike_algorithms(ike_sa_t *ike_sa, uint16_t *prf, uint16_t *kwa);

/**
 * Get the SK_d in force on an IKE_SA now: after a PPK replaced it during
 * IKE_AUTH (RFC 8784), after the IKE_SA was rekeyed. charon raises
 * ike_derived_keys for neither the PPK nor later, so a copy taken there
 * would be the classical one.
 *
 * @param ike_sa		IKE_SA
 * @return				allocated copy (chunk_clear() it), empty if none
 */
chunk_t gikev2_sk_d(ike_sa_t *ike_sa);

/**
 * Get the identities charon authenticated the peer of an IKE_SA as: one per
 * completed authentication round (RFC 4739), the EAP identity of an EAP
 * round, printed as charon prints them. Identities the peer merely claimed
 * (rounds not completed) are not among them.
 *
 * @param ike_sa		IKE_SA
 * @param count			number of identities (out)
 * @return				allocated array of allocated strings, free with
 *						gikev2_identities_free()
 */
char **gikev2_authenticated_identities(ike_sa_t *ike_sa, int *count);

/**
 * Free what gikev2_authenticated_identities() returned.
 *
 * @param ids			array of strings, or NULL
 * @param count			number of strings
 */
void gikev2_identities_free(char **ids, int count);

/**
 * Find and remove the item of a list whose name (a char* member at
 * name_offset, e.g. offsetof(membership_t, name)) is name.
 *
 * @param list			list to search
 * @param name_offset	offset of the item's name pointer
 * @param name			name to look for
 * @return				the removed item, NULL if none has that name
 */
void *gikev2_list_take(linked_list_t *list, size_t name_offset, char *name);

/**
 * Check if two sets of settings (as gikev2_settings_collect() returns them)
 * are the same, in any order.
 *
 * @return				TRUE if every key has the same value in both
 */
bool gikev2_settings_equal(char **keys_a, char **values_a, int count_a,
						   char **keys_b, char **values_b, int count_b);

/**
 * Make the value of setting key, if present and a relative path, relative
 * to dir instead (as swanctl resolves the credential files it loads).
 *
 * @param keys			keys
 * @param values		values, the matching one is replaced
 * @param count			number of settings
 * @param key			the setting holding a path
 * @param dir			directory a relative path is relative to
 */
void gikev2_settings_resolve(char **keys, char **values, int count,
							 char *key, char *dir);

/**
 * Convert an endpoint of the core to a host.
 *
 * @param ep			endpoint
 * @return				host, NULL if family NONE
 */
host_t *gikev2_host_from_endpoint(const gikev2_endpoint_t *ep);

/**
 * Convert a host to a core endpoint (family NONE for %any).
 *
 * @param host			address and port
 * @return				the endpoint
 */
gikev2_endpoint_t gikev2_endpoint_from_host(host_t *host);

/**
 * Convert a traffic selector of the core to a charon traffic selector.
 *
 * @param ts			traffic selector
 * @return				traffic selector, NULL if invalid
 */
traffic_selector_t *gikev2_ts_from_core(gikev2_ts_t *ts);

/**
 * Close an IKE_SA by its unique ID after a delay (from a job, so callers
 * may hold the IKE_SA checked out, and a response in flight leaves first).
 *
 * @param id			unique ID of the IKE_SA
 * @param delay_ms		delay in ms
 */
void gikev2_close_ike_sa(u_int id, uint32_t delay_ms);

/**
 * Close an IKE_SA by its IKE_SA ID after a delay, as gikev2_close_ike_sa().
 * Cheaper with many IKE_SAs: charon finds an IKE_SA ID in its hash table,
 * a unique ID only by walking all IKE_SAs.
 *
 * @param ike_sa_id		IKE_SA ID (cloned)
 * @param delay_ms		delay in ms
 */
void gikev2_close_ike_sa_id(ike_sa_id_t *ike_sa_id, uint32_t delay_ms);

/**
 * Timer driving a core handle through charon's scheduler.
 */
typedef struct gikev2_timer_t gikev2_timer_t;

/**
 * Callback run when the timer fires.
 */
typedef void (*gikev2_timer_cb_t)(void *data);

/**
 * Create a timer.
 *
 * @param cb			callback to run when a deadline passed
 * @param data			data passed to cb
 * @return				timer
 */
gikev2_timer_t *gikev2_timer_create(gikev2_timer_cb_t cb, void *data);

/**
 * Arm the timer for a deadline, unless an earlier one is armed already.
 *
 * @param timer			timer
 * @param deadline_ms	deadline on the gikev2_now_ms() clock
 */
void gikev2_timer_arm(gikev2_timer_t *timer, uint64_t deadline_ms);

/**
 * Disarm and free the timer; pending jobs become no-ops. Waits for a
 * callback running in another thread, so its data may be freed after
 * this returns. Never call it with a lock that callback takes.
 *
 * @param timer			timer
 */
void gikev2_timer_destroy(gikev2_timer_t *timer);

#endif /** GIKEV2_UTIL_H_ @}*/
