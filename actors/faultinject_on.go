//go:build faultinject

package actors

// InjectedPanic makes any actor that receives it panic. It exists only in
// builds tagged faultinject (the test suite) and proves supervision.
type InjectedPanic struct{ Reason string }

func injectFault(msg any) {
	if p, ok := msg.(*InjectedPanic); ok {
		panic("injected: " + p.Reason)
	}
}
