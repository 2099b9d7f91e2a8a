package webhook

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestCloseWhenDraining(t *testing.T) {
	var d Draining
	srv := httptest.NewServer(CloseWhenDraining(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}), &d))
	defer srv.Close()
	get := func() *http.Response {
		resp, err := srv.Client().Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if get().Close {
		t.Fatal("closes connections while not draining")
	}
	d.Start()
	if !get().Close {
		t.Fatal("keeps connections open while draining")
	}
}
