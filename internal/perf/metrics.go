package perf

// Direction says which way a metric gets better.
type Direction string

const (
	HigherIsBetter Direction = "higher_is_better"
	LowerIsBetter  Direction = "lower_is_better"
)

// Metric describes one number of a result block.
type Metric struct {
	Key       string // stable name in perf-summary.json and --perf-gate
	Title     string // short name for tables
	Unit      string
	Direction Direction
	// Core metrics must all be present for a block to be complete.
	Core bool
	// Labels are the row labels (with the colon) that carry the metric,
	// in every client variant.
	Labels []string
}

// Metrics is the catalogue, in the order tables show them. Every latency
// is lower-is-better (upstream files TPOT under higher-is-better by
// mistake; it is not copied here).
var Metrics = []Metric{
	{Key: "request_throughput", Title: "req/s", Unit: "req/s", Direction: HigherIsBetter, Core: true, Labels: []string{"Request throughput (req/s):"}},
	{Key: "output_throughput", Title: "output tok/s", Unit: "tok/s", Direction: HigherIsBetter, Core: true, Labels: []string{"Output token throughput (tok/s):"}},
	{Key: "total_token_throughput", Title: "total tok/s", Unit: "tok/s", Direction: HigherIsBetter, Core: true, Labels: []string{"Total Token throughput (tok/s):"}},
	{Key: "user_throughput", Title: "user tok/s", Unit: "tok/s", Direction: HigherIsBetter, Core: true, Labels: []string{"User throughput (tok/s):"}},
	latency("ttft", "TTFT", "mean", true), latency("ttft", "TTFT", "median", true), latency("ttft", "TTFT", "p99", true), latency("ttft", "TTFT", "std", false),
	latency("tpot", "TPOT", "mean", true), latency("tpot", "TPOT", "median", true), latency("tpot", "TPOT", "p99", true), latency("tpot", "TPOT", "std", false),
	latency("itl", "ITL", "mean", true), latency("itl", "ITL", "median", true), latency("itl", "ITL", "p99", true), latency("itl", "ITL", "std", false),
	latency("e2el", "E2EL", "mean", true), latency("e2el", "E2EL", "median", true), latency("e2el", "E2EL", "p99", true), latency("e2el", "E2EL", "std", false),
	// Speculative decoding; an older client prints the single row.
	{Key: "decoded_tokens_per_iter", Title: "decoded tok/iter", Unit: "tokens", Direction: HigherIsBetter, Labels: []string{"Mean Avg Decoded Tokens per Iter:", "Avg Decoded Tokens per Iter:"}},
	// Gen-only mode.
	{Key: "device_step_time", Title: "device step ms", Unit: "ms", Direction: LowerIsBetter, Labels: []string{"Average Per Iter Device Step Time (ms):"}},
}

var statWord = map[string]string{"mean": "Mean", "median": "Median", "p99": "P99", "std": "Std Dev"}

func latency(key, name, stat string, core bool) Metric {
	return Metric{
		Key:       key + "_" + stat,
		Title:     name + " " + map[string]string{"mean": "mean", "median": "median", "p99": "P99", "std": "std"}[stat],
		Unit:      "ms",
		Direction: LowerIsBetter,
		Core:      core,
		Labels:    []string{statWord[stat] + " " + name + " (ms):"},
	}
}

// Count is a row that is a count or a setting rather than a measure to compare.
type Count struct {
	Key    string
	Labels []string
}

// Counts are the rows kept as counts in perf-summary.json.
var Counts = []Count{
	{"total_requests", []string{"Total requests:"}},
	{"successful_requests", []string{"Successful requests:"}},
	{"failed_requests", []string{"Failed requests:"}},
	{"max_concurrency", []string{"Maximum request concurrency:"}},
	{"duration_s", []string{"Benchmark duration (s):"}},
	{"total_input_tokens", []string{"Total input tokens:"}},
	{"total_output_tokens", []string{"Total generated tokens:"}},
}

var (
	metricByKey = map[string]*Metric{}
	keyByLabel  = map[string]string{}
	countKeys   = map[string]bool{}
)

func init() {
	for i := range Metrics {
		m := &Metrics[i]
		metricByKey[m.Key] = m
		for _, l := range m.Labels {
			keyByLabel[l] = m.Key
		}
	}
	for _, c := range Counts {
		countKeys[c.Key] = true
		for _, l := range c.Labels {
			keyByLabel[l] = c.Key
		}
	}
}

// MetricByKey returns the catalogue entry of key, or nil.
func MetricByKey(key string) *Metric { return metricByKey[key] }

// CoreKeys are the 16 metrics a complete block has.
func CoreKeys() []string {
	var keys []string
	for _, m := range Metrics {
		if m.Core {
			keys = append(keys, m.Key)
		}
	}
	return keys
}
