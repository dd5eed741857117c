package perf

import (
	"bufio"
	"bytes"
	"io"
)

// lineMax bounds the lines perf looks at: a result block's lines and the
// lines the timeline needs are short, and a longer one (a rank's progress
// bar, say) is passed over rather than held, so that a job log of
// gigabytes is read in constant memory.
const lineMax = 64 << 10

// eachLine calls fn with each line of r, numbered from 1 and without its
// newline, cut as strings.Split would cut r (the piece after a final
// newline too, empty). A line longer than lineMax is passed as nil. The
// slice is valid only during the call. It returns a read error other than
// io.EOF, with the number of the line it cut short.
func eachLine(r io.Reader, fn func(n int, line []byte)) (int, error) {
	br := bufio.NewReaderSize(r, lineMax)
	for n := 1; ; n++ {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			for err == bufio.ErrBufferFull {
				_, err = br.ReadSlice('\n')
			}
			line = nil
		}
		fn(n, bytes.TrimSuffix(line, []byte("\n")))
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
