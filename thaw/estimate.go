package thaw

import (
	"context"
	"fmt"

	"github.com/cryophile/cryophile/archive"
	"github.com/cryophile/cryophile/config"
	"github.com/cryophile/cryophile/storage"
)

// Estimate is what restoring one archive will take and cost.
type Estimate struct {
	// Requests is the number of restore requests (fragments that are
	// archived and not restored yet).
	Requests int `json:"requests"`
	// Bytes are those fragments' bytes; TotalBytes all fragments'.
	Bytes      int64 `json:"bytes"`
	TotalBytes int64 `json:"total_bytes"`
	// Class is the fragments' storage class, Tier the tier used for it
	// (Standard when Expedited was asked for DEEP_ARCHIVE).
	Class string `json:"class"`
	Tier  string `json:"tier"`
	// Wait is the typical restore time ("" when nothing needs a restore).
	Wait string `json:"wait,omitempty"`
	// CostUSD is the restore cost from the config's price table;
	// CostKnown is false when the table has no price for Class and Tier.
	CostUSD   float64 `json:"cost_usd"`
	CostKnown bool    `json:"cost_known"`
}

// String is the estimate for humans.
func (e Estimate) String() string {
	cost := "cost unknown (no price for this class and tier in [thaw.prices])"
	switch {
	case e.CostKnown && e.CostUSD > 0 && e.CostUSD < 0.01:
		cost = "less than $0.01"
	case e.CostKnown:
		cost = fmt.Sprintf("about $%.2f", e.CostUSD)
	}
	if e.Requests == 0 {
		return fmt.Sprintf("%d bytes in %s, readable now: no restore request needed", e.TotalBytes, e.Class)
	}
	return fmt.Sprintf("%d restore requests (%s, tier %s) for %d bytes, typical wait %s, %s",
		e.Requests, e.Class, e.Tier, e.Bytes, e.Wait, cost)
}

// EffectiveTier returns the tier thaw uses for class when tier was asked
// for, and a note when they differ: AWS refuses Expedited for
// DEEP_ARCHIVE, so Standard is used.
func EffectiveTier(class, tier string) (string, string) {
	if class == storage.ClassDeepArchive && tier == storage.TierExpedited {
		return storage.TierStandard, "Expedited is not available for DEEP_ARCHIVE; using Standard"
	}
	return tier, ""
}

// TypicalWait returns AWS's published restore time for class and tier, ""
// for classes that need no restore.
func TypicalWait(class, tier string) string {
	tier, _ = EffectiveTier(class, tier)
	switch class {
	case storage.ClassGlacier:
		switch tier {
		case storage.TierExpedited:
			return "1-5 minutes"
		case storage.TierStandard:
			return "3-5 hours"
		case storage.TierBulk:
			return "5-12 hours"
		}
	case storage.ClassDeepArchive:
		switch tier {
		case storage.TierStandard:
			return "up to 12 hours"
		case storage.TierBulk:
			return "up to 48 hours"
		}
	}
	return ""
}

// EstimateArchive heads every fragment of the archive described by m
// and estimates restoring it at tier with prices.
func EstimateArchive(ctx context.Context, store storage.Store, m *archive.Manifest, tier string, prices config.Prices) (Estimate, error) {
	id, err := m.ID()
	if err != nil {
		return Estimate{}, err
	}
	e := Estimate{Tier: tier}
	for _, f := range m.Fragments {
		info, err := store.Head(ctx, id.Key()+"/"+f.Name)
		if err != nil {
			return Estimate{}, fmt.Errorf("thaw: estimate %s: %w", id, err)
		}
		if e.Class == "" {
			e.Class = info.Class
		}
		e.TotalBytes += f.Size
		if storage.NeedsRestore(info.Class) && !info.Readable() && !info.Restore.Ongoing {
			e.Requests++
			e.Bytes += f.Size
		}
	}
	e.Tier, _ = EffectiveTier(e.Class, tier)
	if e.Requests > 0 {
		e.Wait = TypicalWait(e.Class, e.Tier)
		e.CostUSD, e.CostKnown = prices.Cost(e.Class, e.Tier, e.Requests, e.Bytes)
	} else {
		e.CostKnown = true
	}
	return e, nil
}

// EstimateID reads archive id's manifest from the vault and estimates it.
func EstimateID(ctx context.Context, store storage.Store, id archive.ID, tier string, prices config.Prices) (Estimate, error) {
	m, err := getManifest(ctx, store, id)
	if err != nil {
		return Estimate{}, fmt.Errorf("thaw: estimate %s: %w", id, err)
	}
	return EstimateArchive(ctx, store, m, tier, prices)
}
