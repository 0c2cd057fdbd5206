// Package all links every built-in source and sink into a binary: each
// registers itself with package component in its init function. Importing
// this package (as package pipeline does) is how a build knows them; a new
// sink is one package plus one line here.
package all

import (
	// The built-in components.
	_ "github.com/connectd/connectd/sink/files"
	_ "github.com/connectd/connectd/sink/kafka"
	_ "github.com/connectd/connectd/sink/postgres"
	_ "github.com/connectd/connectd/sink/redis"
	_ "github.com/connectd/connectd/source/generator"
	_ "github.com/connectd/connectd/source/kafka"
)
