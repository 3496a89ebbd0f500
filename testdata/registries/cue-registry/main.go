// cue-registry serves cue-labs' in-memory registry (ocimem) through ociserver,
// with the OCI referrers API. Built by scripts/testbed.sh.
//
// ocimem lists referrers with only mediaType/size/digest; the OCI spec wants
// artifactType (or the config's media type) and the manifest's annotations,
// so this wrapper fills them in from the stored manifests, applies the
// ?artifactType= filter (answering with OCI-Filters-Applied) and answers an
// empty list as "manifests":[] rather than null.
//
// It prints "listening on 127.0.0.1:PORT" on stdout once it accepts connections.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"

	"cuelabs.dev/go/oci/ociregistry"
	"cuelabs.dev/go/oci/ociregistry/ocimem"
	"cuelabs.dev/go/oci/ociregistry/ociserver"
)

type filledRegistry struct{ *ocimem.Registry }

type ctxKey struct{}

func (r filledRegistry) Referrers(ctx context.Context, repo string, dig ociregistry.Digest, artifactType string) ociregistry.Seq[ociregistry.Descriptor] {
	if want, ok := ctx.Value(ctxKey{}).(string); ok && artifactType == "" {
		artifactType = want
	}
	all, err := ociregistry.All(r.Registry.Referrers(ctx, repo, dig, ""))
	if err != nil {
		return ociregistry.ErrorSeq[ociregistry.Descriptor](err)
	}
	out := []ociregistry.Descriptor{}
	for _, d := range all {
		if rd, err := r.GetManifest(ctx, repo, d.Digest); err == nil {
			data, _ := io.ReadAll(rd)
			rd.Close()
			var m struct {
				ArtifactType string `json:"artifactType"`
				Config       struct {
					MediaType string `json:"mediaType"`
				} `json:"config"`
				Annotations map[string]string `json:"annotations"`
			}
			if json.Unmarshal(data, &m) == nil {
				d.ArtifactType = m.ArtifactType
				if d.ArtifactType == "" {
					d.ArtifactType = m.Config.MediaType
				}
				d.Annotations = m.Annotations
			}
		}
		if artifactType != "" && d.ArtifactType != artifactType {
			continue
		}
		out = append(out, d)
	}
	return ociregistry.SliceSeq(out)
}

type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) WriteHeader(code int)        { r.code = code }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	flag.Parse()
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("cue-registry: listen %s: %v", *addr, err)
	}
	srv := ociserver.New(filledRegistry{ocimem.New()}, nil)
	h := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		log.Printf("%s %s", req.Method, req.URL)
		if !strings.Contains(req.URL.Path, "/referrers/") {
			srv.ServeHTTP(w, req)
			return
		}
		if at := req.URL.Query().Get("artifactType"); at != "" {
			w.Header().Set("OCI-Filters-Applied", "artifactType")
			req = req.WithContext(context.WithValue(req.Context(), ctxKey{}, at))
		}
		// ociserver writes "manifests":null for an empty list; the spec wants [].
		rec := &recorder{header: http.Header{}, code: http.StatusOK}
		srv.ServeHTTP(rec, req)
		body := bytes.Replace(rec.body.Bytes(), []byte(`"manifests":null`), []byte(`"manifests":[]`), 1)
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(rec.code)
		w.Write(body)
	})
	fmt.Printf("listening on %s\n", l.Addr())
	os.Stdout.Sync()
	log.Fatal(http.Serve(l, h))
}
