package runner

import (
	"testing"
)

// BenchmarkKeptLog is what each byte of a streamed job log costs on the
// agent besides the console: the verdict's scan, masking, the perf scan
// and the results copy, in 32 KiB pieces as the stream delivers them.
// Ranks' output lines with an occasional assignment, as real logs have.
func BenchmarkKeptLog(b *testing.B) {
	var chunk []byte
	for i := 0; len(chunk) < 32<<10; i++ {
		if i%50 == 0 {
			chunk = append(chunk, "[1,3]<stdout>: NCCL_DEBUG=INFO world_size=8 HF_TOKEN=hf_not_real\n"...)
			continue
		}
		chunk = append(chunk, "[1,3]<stdout>: step 1234 loss 0.123 tokens/s 45678 every rank's output, as a real log has it\n"...)
	}
	tail := []byte("Rank0 Pytest finished execution with exit code 0\n")
	const pieces = 2048 // 64 MiB and more
	b.SetBytes(int64(pieces*len(chunk) + len(tail)))
	for b.Loop() {
		j := &jobRun{resultsDir: b.TempDir()}
		k := j.keepJobLog()
		for range pieces {
			k.Write(chunk)
		}
		k.Write(tail)
		k.finish(nil)
		if !k.complete {
			b.Fatalf("copy incomplete: %v", k.err)
		}
	}
}
