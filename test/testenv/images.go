package testenv

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// EnvImagesFile names the file `make images` writes the image tags to;
// by default $CONNECTD_CACHE/images.env, CONNECTD_CACHE defaulting to
// ~/.cache/connectd. Each tag can also be set directly through the variable
// of the same name (CONNECTD_KAFKA_IMAGE, ...).
const EnvImagesFile = "CONNECTD_IMAGES_FILE"

// Images are the tags of the locally built test images.
type Images struct {
	Base, Kafka, Postgres, Redis string
}

// ImagesFile returns where the image tags are read from.
func ImagesFile() string {
	if f := os.Getenv(EnvImagesFile); f != "" {
		return f
	}
	cache := os.Getenv("CONNECTD_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "connectd")
	}
	return filepath.Join(cache, "images.env")
}

// LoadImages reads the image tags written by `make images`; variables in the
// environment override the file.
func LoadImages() (Images, error) {
	vals := map[string]string{}
	path := ImagesFile()
	f, err := os.Open(path)
	if err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
				vals[k] = v
			}
		}
		f.Close()
	}
	for _, k := range []string{"CONNECTD_BASE_IMAGE", "CONNECTD_KAFKA_IMAGE", "CONNECTD_POSTGRES_IMAGE", "CONNECTD_REDIS_IMAGE"} {
		if v := os.Getenv(k); v != "" {
			vals[k] = v
		}
	}
	img := Images{
		Base:     vals["CONNECTD_BASE_IMAGE"],
		Kafka:    vals["CONNECTD_KAFKA_IMAGE"],
		Postgres: vals["CONNECTD_POSTGRES_IMAGE"],
		Redis:    vals["CONNECTD_REDIS_IMAGE"],
	}
	if img.Kafka == "" || img.Postgres == "" || img.Redis == "" {
		if err != nil {
			return img, fmt.Errorf("no image tags: %w; run `make images`", err)
		}
		return img, fmt.Errorf("%s lacks image tags; run `make images`", path)
	}
	return img, nil
}
