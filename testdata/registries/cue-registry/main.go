// cue-registry serves cue-labs' in-memory registry (ocimem) through ociserver,
// with the OCI referrers API. Built by scripts/testbed.sh.
//
// ocimem lists referrers with only mediaType/size/digest; the OCI spec wants
// artifactType (or the config's media type) and the manifest's annotations,
// so this wrapper fills them in from the stored manifests and applies the
// ?artifactType= filter (answering with OCI-Filters-Applied).
//
// It prints "listening on 127.0.0.1:PORT" on stdout once it accepts connections.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
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
				ArtifactType string            `json:"artifactType"`
				Config       struct{ MediaType string `json:"mediaType"` } `json:"config"`
				Annotations  map[string]string `json:"annotations"`
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

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	flag.Parse()
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("cue-registry: listen %s: %v", *addr, err)
	}
	srv := ociserver.New(filledRegistry{ocimem.New()}, nil)
	h := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if at := req.URL.Query().Get("artifactType"); at != "" && strings.Contains(req.URL.Path, "/referrers/") {
			w.Header().Set("OCI-Filters-Applied", "artifactType")
			req = req.WithContext(context.WithValue(req.Context(), ctxKey{}, at))
		}
		log.Printf("%s %s", req.Method, req.URL)
		srv.ServeHTTP(w, req)
	})
	fmt.Printf("listening on %s\n", l.Addr())
	os.Stdout.Sync()
	log.Fatal(http.Serve(l, h))
}
