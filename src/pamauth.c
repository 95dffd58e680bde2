/* Owns auth_type pam's PAM calls (pamauth.h): the conversation that answers the client's
 * password to every hidden prompt, pam_start (pam_start_confdir with the tests' directory),
 * PAM_RHOST, pam_authenticate, pam_acct_mgmt and pam_end, as PgBouncer's pam.c. */
#include "pamauth.h"

#include <stdlib.h>
#include <string.h>

#include <security/pam_appl.h>

#include "log.h"

static const char *confdir; /* NULL: PAM's own */

void pamauth_init(void)
{
	const char *dir = getenv("PGCORO_PAM_CONFDIR"); /* for tests only */
	confdir = dir && dir[0] ? dir : NULL;
}

/* PAM's conversation: the password (APPDATA) for every prompt that hides the answer,
 * PAM's error messages logged, the rest unanswered. Every response PAM is given is its to
 * free. */
static int conversation(int n, const struct pam_message **msg, struct pam_response **resp,
			void *appdata)
{
	if (n < 1 || !msg || !appdata)
		return PAM_CONV_ERR;
	struct pam_response *r = calloc((size_t)n, sizeof(*r));
	if (!r)
		return PAM_BUF_ERR;
	for (int i = 0; i < n; i++) {
		switch (msg[i]->msg_style) {
		case PAM_PROMPT_ECHO_OFF:
			r[i].resp = strdup(appdata);
			if (!r[i].resp)
				goto fail;
			break;
		case PAM_ERROR_MSG:
			log_warning("PAM: %s", msg[i]->msg);
			break;
		default: /* a visible prompt or an information: nothing to answer with */
			break;
		}
	}
	*resp = r;
	return PAM_SUCCESS;
fail:
	for (int i = 0; i < n; i++)
		if (r[i].resp) {
			memset(r[i].resp, 0, strlen(r[i].resp));
			free(r[i].resp);
		}
	free(r);
	return PAM_BUF_ERR;
}

bool pamauth_check(const char *user, const char *password, const char *rhost)
{
	struct pam_conv conv = {.conv = conversation, .appdata_ptr = (void *)password};
	pam_handle_t *h = NULL;
	int rc = pam_start_confdir(PAMAUTH_SERVICE, user, &conv, confdir, &h);
	if (rc != PAM_SUCCESS) {
		log_warning("PAM: pam_start for user \"%s\" failed: %s", user, pam_strerror(h, rc));
		if (h)
			pam_end(h, rc);
		return false;
	}
	const char *step = "pam_set_item(PAM_RHOST)";
	rc = pam_set_item(h, PAM_RHOST, rhost);
	if (rc == PAM_SUCCESS) {
		step = "pam_authenticate";
		rc = pam_authenticate(h, PAM_SILENT);
	}
	if (rc == PAM_SUCCESS) {
		step = "pam_acct_mgmt"; /* expired account, access hours... */
		rc = pam_acct_mgmt(h, PAM_SILENT);
	}
	if (rc != PAM_SUCCESS)
		log_warning("PAM: %s for user \"%s\" from %s failed: %s", step, user, rhost,
			    pam_strerror(h, rc));
	int end = pam_end(h, rc);
	if (end != PAM_SUCCESS)
		log_warning("PAM: pam_end failed: %s", pam_strerror(NULL, end));
	return rc == PAM_SUCCESS;
}
