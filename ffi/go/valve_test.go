package valve

import (
	"errors"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func newLimiter(t testing.TB, config Config) *Limiter {
	t.Helper()
	l, err := New(config)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func snapshot(t testing.TB, l *Limiter) Snapshot {
	t.Helper()
	s, err := l.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	return s
}

func TestPresets(t *testing.T) {
	d := DefaultConfig()
	if d.Algorithm != AIMD || d.AIMD.MinLimit != 1 || d.AIMD.MaxLimit != 1000 ||
		d.AIMD.Timeout != 5*time.Second || d.AIMD.Window.MinDuration != 10*time.Millisecond ||
		d.AIMD.LatencyTolerance != 1.5 {
		t.Errorf("DefaultConfig = %+v", d)
	}
	n := NetflixAIMDConfig()
	if n.AIMD.MinLimit != 20 || n.AIMD.MaxLimit != 200 || n.AIMD.Window.MinRTTThreshold != 100*time.Microsecond ||
		n.AIMD.LatencyTolerance != 0 {
		t.Errorf("NetflixAIMDConfig = %+v", n)
	}
	if f := FixedConfig(7); f.Algorithm != Fixed || f.FixedLimit != 7 {
		t.Errorf("FixedConfig(7) = %+v", f)
	}
	for _, c := range []Config{d, n, FixedConfig(1)} {
		newLimiter(t, c)
	}
	if Version() == "" {
		t.Error("empty version")
	}
}

func TestInvalidConfigs(t *testing.T) {
	bad := []func(*Config){
		func(c *Config) { c.Algorithm = 99 },
		func(c *Config) { c.AIMD.MinLimit = 0 },
		func(c *Config) { c.AIMD.BackoffRatio = 1 },
		func(c *Config) { c.AIMD.Timeout = -time.Second },
		func(c *Config) { c.AIMD.LatencyTolerance = 1 },
		func(c *Config) { c.Algorithm, c.FixedLimit = Fixed, 0 },
	}
	for i, change := range bad {
		c := DefaultConfig()
		change(&c)
		if l, err := New(c); !errors.Is(err, ErrInvalidArgument) || l != nil {
			t.Errorf("config %d: got %v, %v", i, l, err)
		}
	}
}

func TestAcquireReleaseAndErrors(t *testing.T) {
	l := newLimiter(t, FixedConfig(1))
	p, err := l.TryAcquire()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.TryAcquire(); !errors.Is(err, ErrRejected) {
		t.Fatalf("second acquire: %v", err)
	}
	if err := p.Success(); err != nil {
		t.Fatal(err)
	}
	err = p.Success()
	if !errors.Is(err, ErrStalePermit) {
		t.Fatalf("double release: %v", err)
	}
	if err.Error() != "valve: VALVE_STALE_PERMIT" {
		t.Errorf("message %q", err.Error())
	}
	for _, release := range []func(*Permit) error{(*Permit).Dropped, (*Permit).Ignore} {
		p, err := l.TryAcquire()
		if err != nil {
			t.Fatal(err)
		}
		if err := release(&p); err != nil {
			t.Fatal(err)
		}
	}
	var zero Permit
	if err := zero.Success(); !errors.Is(err, ErrStalePermit) {
		t.Errorf("zero permit: %v", err)
	}
	s := snapshot(t, l)
	if s.InFlight != 0 || s.Admitted != 3 || s.Rejected != 1 || s.Success != 1 || s.Dropped != 1 || s.Ignored != 1 {
		t.Errorf("snapshot %+v", s)
	}
}

func TestForeignPermit(t *testing.T) {
	a, b := newLimiter(t, DefaultConfig()), newLimiter(t, DefaultConfig())
	p, err := a.TryAcquire()
	if err != nil {
		t.Fatal(err)
	}
	foreign := p
	foreign.limiter = b
	if err := foreign.Success(); !errors.Is(err, StatusForeignPermit) {
		t.Errorf("foreign release: %v", err)
	}
	if err := p.Success(); err != nil {
		t.Fatal(err)
	}
}

func TestSetLimitAndClose(t *testing.T) {
	l, err := New(NetflixAIMDConfig())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := l.SetLimit(5); err != nil || got != 20 {
		t.Errorf("SetLimit(5) = %d, %v", got, err)
	}
	p, err := l.TryAcquire()
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	l.Close()
	if _, err := l.TryAcquire(); !errors.Is(err, ErrClosed) {
		t.Errorf("acquire after close: %v", err)
	}
	if err := p.Success(); !errors.Is(err, ErrClosed) {
		t.Errorf("release after close: %v", err)
	}
	if _, err := l.SetLimit(3); !errors.Is(err, ErrClosed) {
		t.Errorf("SetLimit after close: %v", err)
	}
	if _, err := l.Snapshot(); !errors.Is(err, ErrClosed) {
		t.Errorf("Snapshot after close: %v", err)
	}
}

// Many goroutines through cgo: in-flight never passes the limit and every count balances.
func TestConcurrentGoroutines(t *testing.T) {
	const goroutines, iterations, limit = 8, 2000, 3
	l := newLimiter(t, FixedConfig(limit))
	var held, maxHeld, admitted, rejected atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < iterations; i++ {
				p, err := l.TryAcquire()
				if errors.Is(err, ErrRejected) {
					rejected.Add(1)
					continue
				} else if err != nil {
					t.Error(err)
					return
				}
				admitted.Add(1)
				h := held.Add(1)
				for m := maxHeld.Load(); h > m && !maxHeld.CompareAndSwap(m, h); m = maxHeld.Load() {
				}
				held.Add(-1)
				if err := p.Success(); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	s := snapshot(t, l)
	if maxHeld.Load() > limit {
		t.Errorf("%d held at once, limit %d", maxHeld.Load(), limit)
	}
	if s.InFlight != 0 || s.Admitted != uint64(admitted.Load()) || s.Rejected != uint64(rejected.Load()) ||
		s.Admitted+s.Rejected != goroutines*iterations || s.Success != s.Admitted {
		t.Errorf("snapshot %+v, admitted %d, rejected %d", s, admitted.Load(), rejected.Load())
	}
}

// What the binding adds to an acquire + release, set against what a cgo call costs by itself,
// all in one run. Each of b.N rounds times a batch of pairs of every kind, in turn; the figures
// are medians over the rounds, per pair (ns):
//
//   - library: the pairs made and timed inside valve (valve_limiter_bench_pairs[_at]): the work
//   - empty: two cgo calls of the same signatures to empty C functions: the cgo floor
//   - empty_raw: the same with the handle as an integer, the signatures of the shims this
//     package's API calls (cgo checks no pointer there): the floor of the API's own calls
//   - cgo: two bare cgo calls to valve per pair (cgo_at: with the caller's time, no clock read)
//   - TryAcquire+Success: this package's API, which reads the limiter's clock
//
// "added" is a figure minus the library's; the target is added <= 1.1 x empty. Run:
// go test -run '^$' -bench Overhead -benchtime 400x
func BenchmarkOverhead(b *testing.B) {
	const batch = 5000
	at, clock := newLimiter(b, DefaultConfig()), newLimiter(b, DefaultConfig())
	var next uint64 // the `_at` pairs' timeline, shared by every `_at` batch
	timeline := func(f func(*Limiter, uint64, int) time.Duration) func() time.Duration {
		return func() time.Duration {
			start := next
			next += 100 * batch
			return f(at, start, batch)
		}
	}
	cases := []struct {
		name string
		run  func() time.Duration
	}{
		{"empty_at", timeline(timeEmptyPairsAt)},
		{"library_at", timeline(timeLibraryPairsAt)},
		{"cgo_at", timeline(timeCgoPairsAt)},
		{"empty", func() time.Duration { return timeEmptyPairs(clock, batch) }},
		{"library", func() time.Duration { return timeLibraryPairs(clock, batch) }},
		{"cgo", func() time.Duration { return timeCgoPairs(clock, batch) }},
		{"empty_raw", func() time.Duration { return timeEmptyRawPairs(clock, batch) }},
		{"TryAcquire+Success", func() time.Duration { return timeTryAcquireSuccess(clock, batch) }},
	}
	samples := make([][]float64, len(cases))
	b.ResetTimer()
	for round := 0; round < b.N; round++ {
		for k := range cases {
			c := (k + round) % len(cases) // rotated, so no case always follows the same one
			samples[c] = append(samples[c], float64(cases[c].run())/batch)
		}
	}
	b.StopTimer()
	if b.N < 10 {
		return // the harness's first call, too few rounds for a median
	}
	ns := map[string]float64{}
	for c, s := range samples {
		ns[cases[c].name] = median(s)
	}
	b.Logf("per pair, median of %d rounds of %d:", b.N, batch)
	b.Logf("%-24s %8s %8s %8s %8s %7s", "", "total", "library", "added", "empty", "ratio")
	for _, row := range [][4]string{
		{"cgo_at", "cgo_at", "library_at", "empty_at"},
		{"cgo", "cgo", "library", "empty"},
		{"TryAcquire+Success", "TryAcquire+Success", "library", "empty"},
		{"TryAcquire+Success/raw", "TryAcquire+Success", "library", "empty_raw"},
	} {
		total, work, empty := ns[row[1]], ns[row[2]], ns[row[3]]
		added := total - work
		b.Logf("%-24s %8.1f %8.1f %8.1f %8.1f %7.2f", row[0], total, work, added, empty, added/empty)
		b.ReportMetric(added/empty, row[0]+"-added/empty")
	}
}

func timeTryAcquireSuccess(l *Limiter, n int) time.Duration {
	began := time.Now()
	for i := 0; i < n; i++ {
		if p, err := l.TryAcquire(); err == nil {
			p.Success()
		}
	}
	return time.Since(began)
}

func median(xs []float64) float64 {
	sorted := append([]float64(nil), xs...)
	sort.Float64s(sorted)
	return sorted[len(sorted)/2]
}

// The idiomatic pair alone, for its allocations (none).
func BenchmarkTryAcquireSuccess(b *testing.B) {
	l := newLimiter(b, DefaultConfig())
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p, err := l.TryAcquire()
		if err != nil {
			b.Fatal(err)
		}
		p.Success()
	}
}
