// Package logtest holds what tests need to read a component's logs.
package logtest

import (
	"bytes"
	"sync"
)

// Buffer is a log destination that keeps what is written to it, safe for
// the concurrent writes of a component's goroutines. The zero value is an
// empty buffer.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
