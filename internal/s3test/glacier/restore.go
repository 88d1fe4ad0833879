package glacier

import (
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// phase is where an archived object stands.
type phase int

const (
	phaseArchived  phase = iota // not readable, no restore running
	phaseRestoring              // restore requested, not done
	phaseRestored               // a readable restored copy exists
)

func (o *object) phase(now time.Time) phase {
	switch r := o.restore; {
	case r == nil:
		return phaseArchived
	case now.Before(r.ready):
		return phaseRestoring
	case now.Before(r.expiry):
		return phaseRestored
	}
	return phaseArchived // the restored copy expired
}

// restoreHeader is the x-amz-restore value at now ("" when none).
func (o *object) restoreHeader(now time.Time) string {
	switch o.phase(now) {
	case phaseRestoring:
		return RestoreHeader(true, time.Time{})
	case phaseRestored:
		return RestoreHeader(false, o.restore.expiry)
	}
	return ""
}

// RestoreHeader formats an x-amz-restore header value as AWS does:
// `ongoing-request="true"` while a restore runs, and
// `ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"`
// once the restored copy is readable.
func RestoreHeader(ongoing bool, expiry time.Time) string {
	if ongoing {
		return `ongoing-request="true"`
	}
	return fmt.Sprintf(`ongoing-request="false", expiry-date="%s"`, expiry.UTC().Format(http.TimeFormat))
}

// restoreRequest is the part of a RestoreRequest body the proxy uses.
type restoreRequest struct {
	Days int
	Tier string
}

// parseRestoreRequest parses a RestoreObject body. The tier defaults to
// Standard, as AWS's does; an empty body is a request with no Days.
func parseRestoreRequest(body []byte) (restoreRequest, error) {
	var x struct {
		Days                 *int   `xml:"Days"`
		Tier                 string `xml:"Tier"`
		GlacierJobParameters struct {
			Tier string `xml:"Tier"`
		} `xml:"GlacierJobParameters"`
		Type string `xml:"Type"`
	}
	if len(body) > 0 {
		if err := xml.Unmarshal(body, &x); err != nil {
			return restoreRequest{}, err
		}
	}
	if x.Type != "" {
		return restoreRequest{}, errors.New("SELECT restores are not emulated")
	}
	rr := restoreRequest{Days: -1, Tier: TierStandard}
	if x.Days != nil {
		rr.Days = *x.Days
	}
	switch {
	case x.GlacierJobParameters.Tier != "":
		rr.Tier = x.GlacierJobParameters.Tier
	case x.Tier != "":
		rr.Tier = x.Tier
	}
	return rr, nil
}

// tierRank orders tiers from slowest to fastest.
var tierRank = map[string]int{TierBulk: 1, TierStandard: 2, TierExpedited: 3}

// delay is how long a restore of class at tier takes.
func (p *Proxy) delay(class, tier string) time.Duration {
	if class == ClassDeepArchive {
		return p.opts.DeepArchiveDelays[tier]
	}
	return p.opts.Delays[tier]
}

// expiryAt is when a copy restored at t for days days goes away. AWS adds
// the days to the completion time and rounds up to the next midnight UTC;
// with a scaled-down Day we round up to the second only.
func (p *Proxy) expiryAt(t time.Time, days int) time.Time {
	e := t.Add(time.Duration(days) * p.opts.Day)
	if p.opts.Day == 24*time.Hour {
		return e.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	}
	if r := e.Truncate(time.Second); !r.Equal(e) {
		e = r.Add(time.Second)
	}
	return e
}

// restore applies a RestoreObject request to bk at now and returns the
// status to answer with, and the error body for error statuses.
func (p *Proxy) restore(bk string, rr restoreRequest, now time.Time) (int, *s3Error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	o := p.objects[bk]
	if o == nil {
		return http.StatusNotFound, &s3Error{Code: "NoSuchKey",
			Message: "The specified key does not exist.", Resource: "/" + bk}
	}
	if !NeedsRestore(o.class) {
		return http.StatusForbidden, &s3Error{Code: "InvalidObjectState",
			Message: "Restore is not allowed for the object's current storage class", StorageClass: o.class}
	}
	if _, ok := tierRank[rr.Tier]; !ok {
		return http.StatusBadRequest, &s3Error{Code: "MalformedXML",
			Message: fmt.Sprintf("Tier %q is not one of Expedited, Standard, Bulk", rr.Tier)}
	}
	if rr.Days < 1 {
		return http.StatusBadRequest, &s3Error{Code: "InvalidArgument",
			Message: "Days must be a positive integer for a restore of an archived object"}
	}
	if o.class == ClassDeepArchive && rr.Tier == TierExpedited {
		return http.StatusBadRequest, &s3Error{Code: "InvalidArgument",
			Message: "Retrieval option is not supported by this storage class"}
	}
	switch o.phase(now) {
	case phaseRestoring:
		cur := o.restore
		if tierRank[rr.Tier] <= tierRank[cur.tier] {
			return http.StatusConflict, &s3Error{Code: "RestoreAlreadyInProgress",
				Message: "Object restore is already in progress", Resource: "/" + bk}
		}
		// A faster tier upgrades the running restore; it never makes it
		// finish later.
		cur.tier = rr.Tier
		if ready := now.Add(p.delay(o.class, rr.Tier)); ready.Before(cur.ready) {
			cur.ready = ready
		}
		cur.expiry = p.expiryAt(cur.ready, rr.Days)
		return http.StatusAccepted, nil
	case phaseRestored:
		// Already restored: the request only resets the expiry, counted
		// from now.
		o.restore.expiry = p.expiryAt(now, rr.Days)
		return http.StatusOK, nil
	}
	ready := now.Add(p.delay(o.class, rr.Tier))
	o.restore = &restoreState{tier: rr.Tier, ready: ready, expiry: p.expiryAt(ready, rr.Days)}
	return http.StatusAccepted, nil
}
