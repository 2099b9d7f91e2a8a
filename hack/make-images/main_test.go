package main

import (
	"testing"
	"time"
)

func TestSourceDateEpoch(t *testing.T) {
	for env, want := range map[string]time.Time{"": time.Unix(0, 0), "1700000000": time.Unix(1700000000, 0)} {
		t.Setenv("SOURCE_DATE_EPOCH", env)
		if got, err := sourceDateEpoch(); err != nil || !got.Equal(want) {
			t.Errorf("SOURCE_DATE_EPOCH=%q: %v, %v; want %v", env, got, err, want)
		}
	}
	t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
	if _, err := sourceDateEpoch(); err == nil {
		t.Error("SOURCE_DATE_EPOCH=yesterday accepted")
	}
}

func TestSelectImages(t *testing.T) {
	ims, err := selectImages("pause, meshwarden")
	if err != nil || len(ims) != 2 || ims[0].Name != "pause" || ims[1].Name != "meshwarden" {
		t.Errorf("selectImages: %v, %v", ims, err)
	}
	if _, err := selectImages("pause,nginx"); err == nil {
		t.Error("an unknown image was accepted")
	}
}
