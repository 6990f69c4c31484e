package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const benchAPIKey = "sk_demo_bench"

// operatorSettings are the manager's tuning flags.
type operatorSettings struct {
	Concurrency       int
	RequestsPerSecond float64
	Burst             int
	ResyncInterval    time.Duration
}

func (s operatorSettings) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Concurrency       int     `json:"maxConcurrentReconciles"`
		RequestsPerSecond float64 `json:"surgeRequestsPerSecond"`
		Burst             int     `json:"surgeBurst"`
		ResyncInterval    string  `json:"resyncInterval"`
	}{s.Concurrency, s.RequestsPerSecond, s.Burst, s.ResyncInterval.String()})
}

func (s operatorSettings) String() string {
	rps := strconv.FormatFloat(s.RequestsPerSecond, 'g', -1, 64)
	if s.RequestsPerSecond < 0 {
		rps = "off"
	}
	return fmt.Sprintf("concurrency %d, rps %s, burst %d, resync %s", s.Concurrency, rps, s.Burst, s.ResyncInterval)
}

// managerProcess is the operator's real binary, run the way a Deployment
// runs it, so that its memory is its own and not the bench's.
type managerProcess struct {
	cmd        *exec.Cmd
	metricsURL string
	pprofURL   string
	logPath    string
	workersUp  chan struct{}
	exited     chan struct{}
	waitErr    error
	memory     *memorySampler
	stopMemory context.CancelFunc
}

// startManager starts the manager and returns once its controller's workers
// run, that is, once its caches are in sync.
func startManager(ctx context.Context, env *environment, runName, surgeURL string, settings operatorSettings, watchNamespace, goMemLimit string) (*managerProcess, error) {
	metricsAddress, err := freeLocalAddress()
	if err != nil {
		return nil, err
	}
	pprofAddress, err := freeLocalAddress()
	if err != nil {
		return nil, err
	}
	args := []string{
		"--kubeconfig=" + env.kubeconfig,
		"--surge-api-url=" + surgeURL,
		"--metrics-bind-address=" + metricsAddress,
		"--metrics-secure=false",
		"--pprof-bind-address=" + pprofAddress,
		"--health-probe-bind-address=0",
		"--max-concurrent-reconciles=" + strconv.Itoa(settings.Concurrency),
		"--surge-requests-per-second=" + strconv.FormatFloat(settings.RequestsPerSecond, 'g', -1, 64),
		"--surge-burst=" + strconv.Itoa(settings.Burst),
		"--resync-interval=" + settings.ResyncInterval.String(),
	}
	if watchNamespace != "" {
		args = append(args, "--watch-namespace="+watchNamespace)
	}
	logPath := filepath.Join(env.outDir, runName+"-manager.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(env.managerBinary, args...)
	cmd.Env = append(os.Environ(), "SURGE_API_KEY="+benchAPIKey)
	if goMemLimit != "" {
		cmd.Env = append(cmd.Env, "GOMEMLIMIT="+goMemLimit)
	}
	cmd.Stdout = logFile
	// A bench that dies leaves no manager behind to skew the next one.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		_ = logFile.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("starting the manager: %w", err)
	}
	m := &managerProcess{
		cmd:        cmd,
		metricsURL: "http://" + metricsAddress + "/metrics",
		pprofURL:   "http://" + pprofAddress + "/debug/pprof",
		logPath:    logPath,
		workersUp:  make(chan struct{}),
		exited:     make(chan struct{}),
	}
	go m.followLog(stderr, logFile)

	select {
	case <-m.workersUp:
	case <-m.exited:
		return nil, fmt.Errorf("the manager exited at start (%v); see %s", m.waitErr, logPath)
	case <-time.After(2 * time.Minute):
		m.stop()
		return nil, fmt.Errorf("the manager's workers did not start within 2m; see %s", logPath)
	case <-ctx.Done():
		m.stop()
		return nil, ctx.Err()
	}
	samplerCtx, cancel := context.WithCancel(ctx)
	m.stopMemory = cancel
	m.memory = newMemorySampler(cmd.Process.Pid, m.metricsURL, apiServerPID())
	go m.memory.run(samplerCtx)
	return m, nil
}

// followLog copies the manager's log to its file and notices when the
// controller starts its workers, which it logs after its caches synced.
func (m *managerProcess) followLog(stderr io.Reader, logFile *os.File) {
	reader := bufio.NewReader(stderr)
	signalled := false
	for {
		line, err := reader.ReadString('\n')
		_, _ = logFile.WriteString(line)
		if !signalled && strings.Contains(line, "Starting workers") {
			close(m.workersUp)
			signalled = true
		}
		if err != nil {
			break
		}
	}
	m.waitErr = m.cmd.Wait()
	_ = logFile.Close()
	close(m.exited)
}

// stop ends the manager as Kubernetes would: SIGTERM, then SIGKILL.
func (m *managerProcess) stop() {
	if m.stopMemory != nil {
		m.stopMemory()
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
	case <-time.After(30 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.exited
	}
}

// saveHeapProfile writes the manager's heap profile, taken right after a
// garbage collection so that it shows what is live, to path; go tool pprof
// reads it.
func (m *managerProcess) saveHeapProfile(ctx context.Context, path string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.pprofURL+"/heap?gc=1", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("fetching the manager's heap profile: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetching the manager's heap profile: %s", resp.Status)
	}
	profile, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return os.WriteFile(path, profile, 0o644)
}

// reconciles is the manager's count of finished reconciles.
func (m *managerProcess) reconciles(ctx context.Context) (float64, error) {
	samples, err := scrape(ctx, m.metricsURL, "controller_runtime_reconcile_total")
	if err != nil {
		return 0, err
	}
	return sumSamples(samples, "controller_runtime_reconcile_total", map[string]string{"controller": "surgeenduser"}), nil
}

func scrape(ctx context.Context, url string, names ...string) ([]sample, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scraping %s: %w", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scraping %s: %s", url, resp.Status)
	}
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return parseMetrics(raw, names...)
}

// memorySampler follows the manager's memory: resident set size from
// /proc (the kernel keeps the peak), and the Go heap from the manager's
// metrics, whose peak only sampling can catch.
type memorySampler struct {
	pid        int
	metricsURL string
	// apiServerPID is envtest's kube-apiserver, whose CPU time is counted
	// beside the manager's; 0 when it was not found.
	apiServerPID int

	mu            sync.Mutex
	peakHeapInuse float64
	peakHeapAlloc float64
	peakHeapLive  float64
	last          memoryReading
	// phaseStart and cpuAtStart begin the phase whose CPU time is counted.
	phaseStart          time.Time
	cpuAtStart          float64
	apiServerCPUAtStart float64
}

// memoryReading is one look at the manager's memory, in bytes.
type memoryReading struct {
	RSS       float64 `json:"rssBytes"`
	PeakRSS   float64 `json:"peakRssBytes"`
	HeapInuse float64 `json:"heapInuseBytes"`
	HeapAlloc float64 `json:"heapAllocBytes"`
	// HeapLive is the heap the last garbage collection found reachable:
	// what the manager needs, without the garbage awaiting the next one.
	HeapLive float64 `json:"heapLiveBytes"`
}

// memoryPeaks is the manager's memory over a phase, in bytes.
type memoryPeaks struct {
	// PeakRSS is VmHWM, the kernel's high-water mark of resident memory
	// since the phase began.
	PeakRSS float64 `json:"peakRssBytes"`
	// PeakHeapInuse and PeakHeapAlloc are the highest values sampled.
	PeakHeapInuse float64 `json:"peakHeapInuseBytes"`
	PeakHeapAlloc float64 `json:"peakHeapAllocBytes"`
	PeakHeapLive  float64 `json:"peakHeapLiveBytes"`
	// End is the reading when the phase ended.
	End memoryReading `json:"end"`
	// CPUSeconds is the CPU time (user and system) the manager used in the
	// phase, which lasted Seconds.
	CPUSeconds float64 `json:"cpuSeconds"`
	// APIServerCPUSeconds is the CPU time envtest's API server used in the
	// phase, for the manager's requests and the bench's own.
	APIServerCPUSeconds float64 `json:"apiServerCpuSeconds"`
	Seconds             float64 `json:"seconds"`
}

// memorySampleInterval is how often the manager's metrics are scraped for
// its heap (-sample-interval): each scrape also renders every per-resource
// series, so at 100,000 users a scrape a second would weigh on what it
// measures.
var memorySampleInterval = time.Second

func newMemorySampler(pid int, metricsURL string, apiServerPID int) *memorySampler {
	return &memorySampler{pid: pid, metricsURL: metricsURL, apiServerPID: apiServerPID}
}

// apiServerPID finds the kube-apiserver that envtest started as a child of
// this process; 0 when there is none.
func apiServerPID() int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, entry := range entries {
		pid, err := strconv.Atoi(entry.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		stat := string(raw)
		open, closing := strings.IndexByte(stat, '('), strings.LastIndexByte(stat, ')')
		if open < 0 || closing < open {
			continue
		}
		fields := strings.Fields(stat[closing+1:])
		if stat[open+1:closing] == "kube-apiserver" && len(fields) > 1 && fields[1] == strconv.Itoa(os.Getpid()) {
			return pid
		}
	}
	return 0
}

// apiServerCPU is the API server's CPU time so far; 0 without one.
func (s *memorySampler) apiServerCPU() float64 {
	if s.apiServerPID == 0 {
		return 0
	}
	cpu, err := readProcessCPU(s.apiServerPID)
	if err != nil {
		return 0
	}
	return cpu
}

func (s *memorySampler) run(ctx context.Context) {
	ticker := time.NewTicker(memorySampleInterval)
	defer ticker.Stop()
	for {
		_, _ = s.sample(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func (s *memorySampler) sample(ctx context.Context) (memoryReading, error) {
	reading, err := readProcessMemory(s.pid)
	if err != nil {
		return memoryReading{}, err
	}
	samples, err := scrape(ctx, s.metricsURL, "go_memstats_heap_inuse_bytes", "go_memstats_heap_alloc_bytes", "go_gc_heap_live_bytes")
	if err != nil {
		return memoryReading{}, err
	}
	reading.HeapInuse = sumSamples(samples, "go_memstats_heap_inuse_bytes", nil)
	reading.HeapAlloc = sumSamples(samples, "go_memstats_heap_alloc_bytes", nil)
	reading.HeapLive = sumSamples(samples, "go_gc_heap_live_bytes", nil)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.peakHeapInuse = max(s.peakHeapInuse, reading.HeapInuse)
	s.peakHeapAlloc = max(s.peakHeapAlloc, reading.HeapAlloc)
	s.peakHeapLive = max(s.peakHeapLive, reading.HeapLive)
	s.last = reading
	return reading, nil
}

// resetPeaks starts a new phase: the kernel's high-water mark is reset
// through clear_refs (Linux 4.0 and later), and the sampled heap peaks too.
func (s *memorySampler) resetPeaks(ctx context.Context) error {
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", s.pid), []byte("5"), 0); err != nil {
		return fmt.Errorf("resetting the manager's peak RSS: %w", err)
	}
	cpu, err := readProcessCPU(s.pid)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.peakHeapInuse, s.peakHeapAlloc, s.peakHeapLive = 0, 0, 0
	s.phaseStart, s.cpuAtStart, s.apiServerCPUAtStart = time.Now(), cpu, s.apiServerCPU()
	s.mu.Unlock()
	_, err = s.sample(ctx)
	return err
}

// peaks reads the memory now and returns the peaks since the last reset.
func (s *memorySampler) peaks(ctx context.Context) (memoryPeaks, error) {
	reading, err := s.sample(ctx)
	if err != nil {
		return memoryPeaks{}, err
	}
	cpu, err := readProcessCPU(s.pid)
	if err != nil {
		return memoryPeaks{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return memoryPeaks{
		PeakRSS: reading.PeakRSS, PeakHeapInuse: s.peakHeapInuse, PeakHeapAlloc: s.peakHeapAlloc, PeakHeapLive: s.peakHeapLive, End: reading,
		CPUSeconds: cpu - s.cpuAtStart, APIServerCPUSeconds: s.apiServerCPU() - s.apiServerCPUAtStart,
		Seconds: time.Since(s.phaseStart).Seconds(),
	}, nil
}

// clockTicksPerSecond is the unit of the CPU times in /proc/PID/stat
// (USER_HZ), 100 on every Linux architecture Go supports.
const clockTicksPerSecond = 100

// readProcessCPU reads the CPU time, user and system, the process has used,
// from fields 14 and 15 of /proc/PID/stat.
func readProcessCPU(pid int) (float64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("reading the manager's CPU time: %w", err)
	}
	// The command name in field 2 may hold spaces and parentheses; the
	// fields after its last closing parenthesis start at field 3.
	end := strings.LastIndexByte(string(raw), ')')
	fields := strings.Fields(string(raw)[end+1:])
	if end < 0 || len(fields) < 13 {
		return 0, errors.New("no CPU times in /proc/PID/stat: is this Linux?")
	}
	var ticks float64
	for _, field := range fields[11:13] {
		value, err := strconv.ParseFloat(field, 64)
		if err != nil {
			return 0, fmt.Errorf("reading the manager's CPU time: %w", err)
		}
		ticks += value
	}
	return ticks / clockTicksPerSecond, nil
}

// readProcessMemory reads VmRSS and VmHWM from /proc/PID/status.
func readProcessMemory(pid int) (memoryReading, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memoryReading{}, fmt.Errorf("reading the manager's memory: %w", err)
	}
	var reading memoryReading
	found := 0
	for line := range strings.SplitSeq(string(raw), "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		kib, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 64)
		if err != nil {
			return memoryReading{}, fmt.Errorf("reading %s of the manager: %w", name, err)
		}
		found++
		if name == "VmRSS" {
			reading.RSS = kib * 1024
		} else {
			reading.PeakRSS = kib * 1024
		}
	}
	if found != 2 {
		return memoryReading{}, errors.New("no VmRSS and VmHWM in /proc/PID/status: is this Linux?")
	}
	return reading, nil
}
