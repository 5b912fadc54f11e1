package qosd

import (
	"time"

	"pisanix.io/pisanix/config"
)

// Messages of the reconcile actor. Requests are answered with ctx.Respond.

// applyConfig hands the actor a new configuration from its source.
type applyConfig struct {
	cfg     *config.DaemonConfig
	version string
}

// sourceFailed reports a failed fetch or parse; the last config stays.
type sourceFailed struct{ err error }

// resync re-applies the current configuration: repairs drift (a qdisc
// deleted by hand) and re-resolves host names.
type resync struct{}

// cleanupRequest stops the workers and removes everything the daemon added.
// Answer: cleanupReply.
type cleanupRequest struct{}

type cleanupReply struct{ err error }

// countersRequest asks for every class's counters. Answer: countersReply.
type countersRequest struct{}

type countersReply struct {
	counters []ClassCounters
	err      error
}

// statusRequest asks for the daemon's state. Answer: Status.
type statusRequest struct{}

// workerPanicked carries a panic of a goroutine the actor started, so that
// the actor fails and its supervisor restarts it.
type workerPanicked struct {
	worker string
	value  any
	stack  string
}

// Status is what /status reports.
type Status struct {
	Source          string    `json:"source"`
	ClassifierReady bool      `json:"classifierReady"`
	ClassifierError string    `json:"classifierError,omitempty"`
	ConfigVersion   string    `json:"configVersion,omitempty"`
	Applied         bool      `json:"applied"` // the current config is in force
	AppliedVersion  string    `json:"appliedVersion,omitempty"`
	LastError       string    `json:"lastError,omitempty"`
	LastApply       time.Time `json:"lastApply,omitzero"`
	Classes         int       `json:"classes"`
	Restarts        int       `json:"restarts"`
}
