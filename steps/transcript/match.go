package transcript

// matcher finds which of a fixed set of needles occur in a line, in one pass
// over its bytes (an Aho-Corasick automaton compiled to a dense table). A
// transcript can hold a million lines and most of them match nothing, so the
// classifier pays one table lookup per byte instead of one substring search
// per pattern per line.
type matcher struct {
	class [256]uint8 // byte -> column; bytes that occur in no needle share column 0
	ncls  int        // number of columns
	delta []int32    // row offset of a state + class -> row offset of the next state
	out   []hitSet   // needles ending at a state, including its suffixes
	// outStart is the row offset of the first state with output; states
	// are numbered so that all states from there on have output.
	outStart int32
	needles  []string
}

// maxNeedles bounds the catalogue so a hit set fits in four words.
const maxNeedles = 256

// hitSet is a set of needle indexes.
type hitSet [4]uint64

func (h *hitSet) add(i int)     { h[i>>6] |= 1 << (uint(i) & 63) }
func (h hitSet) has(i int) bool { return h[i>>6]&(1<<(uint(i)&63)) != 0 }
func (h hitSet) empty() bool    { return h[0]|h[1]|h[2]|h[3] == 0 }
func (h *hitSet) union(o hitSet) {
	h[0] |= o[0]
	h[1] |= o[1]
	h[2] |= o[2]
	h[3] |= o[3]
}
func (h hitSet) hasAll(o hitSet) bool {
	return h[0]&o[0] == o[0] && h[1]&o[1] == o[1] && h[2]&o[2] == o[2] && h[3]&o[3] == o[3]
}

// and returns the needles in both sets.
func (h hitSet) and(o hitSet) hitSet {
	return hitSet{h[0] & o[0], h[1] & o[1], h[2] & o[2], h[3] & o[3]}
}

// newMatcher compiles the needles. It panics on an empty needle or too many
// needles: the catalogue is fixed at build time and a test covers it.
func newMatcher(needles []string) *matcher {
	if len(needles) > maxNeedles {
		panic("transcript: too many needles")
	}
	m := &matcher{needles: needles}
	// Columns: one per distinct byte used by any needle.
	m.ncls = 1
	for _, n := range needles {
		if n == "" {
			panic("transcript: empty needle")
		}
		for i := 0; i < len(n); i++ {
			if m.class[n[i]] == 0 {
				m.class[n[i]] = uint8(m.ncls)
				m.ncls++
			}
		}
	}
	// The trie, with -1 for a missing edge.
	type node struct {
		next []int32
		fail int32
		out  hitSet
	}
	newNode := func() node {
		nx := make([]int32, m.ncls)
		for i := range nx {
			nx[i] = -1
		}
		return node{next: nx}
	}
	nodes := []node{newNode()}
	for idx, n := range needles {
		s := int32(0)
		for i := 0; i < len(n); i++ {
			c := m.class[n[i]]
			if nodes[s].next[c] < 0 {
				nodes = append(nodes, newNode())
				nodes[s].next[c] = int32(len(nodes) - 1)
			}
			s = nodes[s].next[c]
		}
		nodes[s].out.add(idx)
	}
	// Breadth-first: failure links, then the missing edges filled in from
	// the failure state, which makes the table a complete DFA.
	queue := make([]int32, 0, len(nodes))
	for c := 0; c < m.ncls; c++ {
		t := nodes[0].next[c]
		if t < 0 {
			nodes[0].next[c] = 0
			continue
		}
		nodes[t].fail = 0
		queue = append(queue, t)
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		nodes[s].out.union(nodes[nodes[s].fail].out)
		for c := 0; c < m.ncls; c++ {
			t := nodes[s].next[c]
			if t < 0 {
				nodes[s].next[c] = nodes[nodes[s].fail].next[c]
				continue
			}
			nodes[t].fail = nodes[nodes[s].fail].next[c]
			queue = append(queue, t)
		}
	}
	// Renumber the states so that those with output come last: the scan
	// loop then tells them apart with one comparison. The root has no
	// output (no needle is empty), so it stays first.
	num := make([]int32, len(nodes))
	next := int32(0)
	for pass := 0; pass < 2; pass++ {
		for i, n := range nodes {
			if n.out.empty() == (pass == 0) {
				num[i] = next
				next++
			}
		}
	}
	m.outStart = int32(len(nodes))
	for i, n := range nodes {
		if !n.out.empty() && num[i] < m.outStart {
			m.outStart = num[i]
		}
	}
	// The table holds row offsets (state*ncls), which saves a multiply
	// per byte.
	m.delta = make([]int32, len(nodes)*m.ncls)
	m.out = make([]hitSet, len(nodes))
	for i, n := range nodes {
		row := m.delta[int(num[i])*m.ncls:]
		for c, t := range n.next {
			row[c] = num[t] * int32(m.ncls)
		}
		m.out[num[i]] = n.out
	}
	m.outStart *= int32(m.ncls)
	return m
}

// scan returns the set of needles that occur in s.
func (m *matcher) scan(s string) hitSet {
	var hits hitSet
	off := int32(0)
	delta, class, outStart := m.delta, &m.class, m.outStart
	for i := 0; i < len(s); i++ {
		off = delta[off+int32(class[s[i]])]
		if off >= outStart {
			hits.union(m.out[off/int32(m.ncls)])
		}
	}
	return hits
}
