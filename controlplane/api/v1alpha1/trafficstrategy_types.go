package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TrafficStrategySpec picks backends and says how statements reach them.
type TrafficStrategySpec struct {
	// Selector picks the DatabaseEndpoints (same namespace) that are the
	// backends. An empty selector ({}) picks every endpoint in the namespace.
	Selector *metav1.LabelSelector `json:"selector"`
	// LoadBalance chooses a backend per statement.
	LoadBalance *LoadBalance `json:"loadBalance"`
	// CircuitBreaks reject statements that match.
	// +optional
	// +kubebuilder:validation:MaxItems=128
	CircuitBreaks []CircuitBreak `json:"circuitBreaks,omitempty"`
	// ConcurrencyControls bound statements that match.
	// +optional
	// +kubebuilder:validation:MaxItems=128
	ConcurrencyControls []ConcurrencyControl `json:"concurrencyControls,omitempty"`
}

// LoadBalance is exactly one of simpleLoadBalance or readWriteSplitting.
// +kubebuilder:validation:XValidation:rule="has(self.simpleLoadBalance) != has(self.readWriteSplitting)",message="exactly one of simpleLoadBalance or readWriteSplitting is required"
type LoadBalance struct {
	// +optional
	SimpleLoadBalance *SimpleLoadBalance `json:"simpleLoadBalance,omitempty"`
	// +optional
	ReadWriteSplitting *ReadWriteSplitting `json:"readWriteSplitting,omitempty"`
}

// LoadBalanceKind is a balancing algorithm.
// +kubebuilder:validation:Enum=random;roundrobin
type LoadBalanceKind string

// Balancing algorithms.
const (
	LoadBalanceRandom     LoadBalanceKind = "random"
	LoadBalanceRoundRobin LoadBalanceKind = "roundrobin"
)

// SimpleLoadBalance spreads statements over every selected endpoint.
type SimpleLoadBalance struct {
	Kind LoadBalanceKind `json:"kind"`
}

// ReadWriteSplitting is exactly one of static or dynamic.
// +kubebuilder:validation:XValidation:rule="has(self.static) != has(self.dynamic)",message="exactly one of static or dynamic is required"
type ReadWriteSplitting struct {
	// +optional
	Static *ReadWriteSplittingStatic `json:"static,omitempty"`
	// +optional
	Dynamic *ReadWriteSplittingDynamic `json:"dynamic,omitempty"`
}

// Target is where a statement goes.
// +kubebuilder:validation:Enum=read;readwrite
type Target string

// ReadWriteSplittingStatic routes by rules with a default target.
type ReadWriteSplittingStatic struct {
	// +optional
	// +kubebuilder:default=readwrite
	DefaultTarget Target `json:"defaultTarget,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxItems=128
	Rules []ReadWriteSplittingRule `json:"rules,omitempty"`
}

// ReadWriteSplittingDynamic adds replica discovery to static rules.
type ReadWriteSplittingDynamic struct {
	// +optional
	// +kubebuilder:default=readwrite
	DefaultTarget Target `json:"defaultTarget,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxItems=128
	Rules     []ReadWriteSplittingRule `json:"rules,omitempty"`
	Discovery ReadWriteDiscovery       `json:"discovery"`
}

// ReadWriteSplittingRule sends matching statements to a target. A regex
// rule needs both; a generic rule (Pisanix's, which classifies by statement
// kind) needs neither: it sends every read that may move to its target,
// read unless set.
// +kubebuilder:validation:XValidation:rule="self.type == 'generic' || (has(self.regex) && size(self.regex) > 0 && has(self.target))",message="a regex rule needs regex and target"
type ReadWriteSplittingRule struct {
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// +kubebuilder:validation:Enum=regex;generic
	Type string `json:"type"`
	// +optional
	Regex []string `json:"regex,omitempty"`
	// +optional
	Target Target `json:"target,omitempty"`
	// +optional
	AlgorithmName LoadBalanceKind `json:"algorithmName,omitempty"`
}

// ReadWriteDiscovery finds the primary and replicas.
type ReadWriteDiscovery struct {
	MasterHighAvailability *MasterHighAvailability `json:"masterHighAvailability"`
}

// MasterHighAvailability is the MHA monitor.
// +kubebuilder:validation:XValidation:rule="!(has(self.password) && has(self.passwordSecretRef))",message="set password or passwordSecretRef, not both"
// +kubebuilder:validation:XValidation:rule="!(has(self.monitorInterval) && has(self.monitorPeriod))",message="set monitorInterval or monitorPeriod (its Pisanix alias), not both"
type MasterHighAvailability struct {
	// +kubebuilder:validation:MinLength=1
	User string `json:"user"`
	// +optional
	Password string `json:"password,omitempty"`
	// +optional
	PasswordSecretRef *SecretKeyRef `json:"passwordSecretRef,omitempty"`
	// MonitorInterval in milliseconds.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MonitorInterval int64 `json:"monitorInterval,omitempty"`
	// MonitorPeriod is MonitorInterval under the name Pisanix's
	// TrafficStrategy docs used (its releases read both).
	// +optional
	// +kubebuilder:validation:Minimum=1
	MonitorPeriod int64 `json:"monitorPeriod,omitempty"`
	// +optional
	ConnectionProbe *Probe `json:"connectionProbe,omitempty"`
	// +optional
	PingProbe *Probe `json:"pingProbe,omitempty"`
	// +optional
	ReadOnlyProbe *Probe `json:"readOnlyProbe,omitempty"`
	// +optional
	ReplicationLagProbe *ReplicationLagProbe `json:"replicationLagProbe,omitempty"`
}

// Probe is one MHA check; periods and timeouts in milliseconds.
type Probe struct {
	// +optional
	// +kubebuilder:validation:Minimum=1
	PeriodMilliseconds int64 `json:"periodMilliseconds,omitempty"`
	// +optional
	// +kubebuilder:validation:Minimum=1
	TimeoutMilliseconds int64 `json:"timeoutMilliseconds,omitempty"`
	// +optional
	// +kubebuilder:validation:Minimum=1
	FailureThreshold int64 `json:"failureThreshold,omitempty"`
	// +optional
	// +kubebuilder:validation:Minimum=1
	SuccessThreshold int64 `json:"successThreshold,omitempty"`
}

// ReplicationLagProbe adds the lag threshold (milliseconds).
type ReplicationLagProbe struct {
	Probe `json:",inline"`
	// +optional
	// +kubebuilder:validation:Minimum=0
	MaxReplicationLag int64 `json:"maxReplicationLag,omitempty"`
}

// CircuitBreak rejects statements matching any regex.
type CircuitBreak struct {
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:items:MinLength=1
	Regex []string `json:"regex"`
}

// ConcurrencyControl bounds concurrent statements matching any regex.
type ConcurrencyControl struct {
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:items:MinLength=1
	Regex []string `json:"regex"`
	// +kubebuilder:validation:Minimum=1
	MaxConcurrency int32 `json:"maxConcurrency"`
	// Duration of the window: a Go duration string ("5s", "1m30s") or, for
	// old manifests, an integer (see Duration).
	// +optional
	Duration Duration `json:"duration,omitempty"`
}

// TrafficStrategyStatus reports what the selector picks.
type TrafficStrategyStatus struct {
	CommonStatus `json:",inline"`
	// Endpoints is the number of DatabaseEndpoints the selector picks.
	// +optional
	Endpoints int32 `json:"endpoints"`
}

// TrafficStrategy picks backends and how statements reach them.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ts,categories=pisanix
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Balance",type=string,JSONPath=`.spec.loadBalance.simpleLoadBalance.kind`
// +kubebuilder:printcolumn:name="Endpoints",type=integer,JSONPath=`.status.endpoints`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type TrafficStrategy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   TrafficStrategySpec   `json:"spec"`
	Status TrafficStrategyStatus `json:"status,omitempty"`
}

// TrafficStrategyList is a list of TrafficStrategies.
//
// +kubebuilder:object:root=true
type TrafficStrategyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []TrafficStrategy `json:"items"`
}

// PasswordSecretRefOrNil is the Secret reference, nil-safe on m.
func (m *MasterHighAvailability) PasswordSecretRefOrNil() *SecretKeyRef {
	if m == nil {
		return nil
	}
	return m.PasswordSecretRef
}
