package workload

import (
	"encoding/json"
	"fmt"
	"hash/fnv"

	"k8s.io/apimachinery/pkg/util/rand"

	skiffv1alpha1 "skiff.dev/skiff/apis/skiff/v1alpha1"
)

// revisionLength is the length of a revision name: Instance names leave
// room for exactly this many characters (apis' MaxWorkloadNameLength).
const revisionLength = 10

// Revision names a template by its content: the same template gives the
// same revision in every process and across restarts, so a rollback to an
// earlier template recognises its Instances again.
func Revision(t *skiffv1alpha1.InstanceTemplate) string {
	// Encoding a struct of plain fields cannot fail.
	data, _ := json.Marshal(t)
	h := fnv.New64a()
	_, _ = h.Write(data)
	// SafeEncodeString keeps to consonants and digits: no words, valid in
	// DNS labels. 10 of the 16 hex digits: 40 bits.
	return rand.SafeEncodeString(fmt.Sprintf("%016x", h.Sum64()))[:revisionLength]
}
