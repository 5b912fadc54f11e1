package main

import (
	"fmt"
	"strings"

	sqle "github.com/dolthub/go-mysql-server"
	"github.com/dolthub/go-mysql-server/sql"
)

// demoDB is the database the demo serves, as in the Weaveworks socks-shop.
const demoDB = "socksdb"

// sock is one catalogue row.
type sock struct {
	ID, Name, Description string
	Price                 string // DECIMAL(10,2) literal
	Count                 int
	Image1, Image2        string
	Tags                  []string
}

// socks returns the socks-shop catalogue (Weaveworks microservices-demo
// data), sorted by id.
func socks() []sock {
	return []sock{
		{"03fef6ac-1896-4ce8-bd69-b798f85c6e0b", "Holy", "Socks fit for a Messiah. You too can experience walking in water with these special edition beauties. Each hole is lovingly proggled to leave smooth edges. The only sock approved by a higher power.", "99.99", 1, "/catalogue/images/holy_1.jpeg", "/catalogue/images/holy_2.jpeg", []string{"magic", "action"}},
		{"3395a43e-2d88-40de-b95f-e00e1502085b", "Colourful", "proident occaecat irure et excepteur labore minim nisi amet irure", "18.00", 438, "/catalogue/images/colourful_socks.jpg", "/catalogue/images/colourful_socks.jpg", []string{"brown", "blue"}},
		{"510a0d7e-8e83-4193-b483-e27e09ddc34d", "SuperSport XL", "Ready for action. Engineers: be ready to smash that next bug! Be ready, with these super-action-sport-masterpieces. This particular engineer was chased away from the office with a stick.", "15.00", 820, "/catalogue/images/puma_1.jpeg", "/catalogue/images/puma_2.jpeg", []string{"sport", "black", "formal"}},
		{"647d653f-14ed-4391-bc00-ed6ee2687b51", "Classic", "Keep it simple.", "12.00", 127, "/catalogue/images/classic.jpg", "/catalogue/images/classic2.jpg", []string{"brown", "green"}},
		{"6d62d909-f957-430e-8689-b5129c0bb75e", "Weave special", "Limited issue Weave socks.", "17.15", 33, "/catalogue/images/weave1.jpg", "/catalogue/images/weave2.jpg", []string{"geek", "black"}},
		{"808a2de1-1aaa-4c25-a9b9-6612e8f29a38", "Crossed", "A mature sock, crossed, with an air of nonchalance.", "17.32", 738, "/catalogue/images/cross_1.jpeg", "/catalogue/images/cross_2.jpeg", []string{"blue", "red", "action", "formal"}},
		{"819e1fbf-8b7e-4f6d-811f-693534916a8b", "Figueroa", "enim officia aliqua excepteur esse deserunt quis aliquip nostrud anim", "14.00", 808, "/catalogue/images/WAT.jpg", "/catalogue/images/WAT2.jpg", []string{"formal", "green", "blue"}},
		{"837ab141-399e-4c1f-9abc-bace40296bac", "Cat socks", "consequat amet cupidatat minim laborum tempor elit ex consequat in", "15.00", 175, "/catalogue/images/catsocks.jpg", "/catalogue/images/catsocks2.jpg", []string{"brown", "green", "formal"}},
		{"a0a4f044-b040-410d-8ead-4de0446aec7e", "Nerd leg", "For all those leg lovers out there. A perfect example of a swivel chair trained calf. Meticulously trained on a diet of sitting and Pina Coladas. Phwarr...", "7.99", 115, "/catalogue/images/bit_of_leg_1.jpeg", "/catalogue/images/bit_of_leg_2.jpeg", []string{"blue", "skin"}},
		{"d3588630-ad8e-49df-bbd7-3167f7efb246", "YouTube.sock", "We were not paid to sell this sock. It's just a bit geeky.", "10.99", 801, "/catalogue/images/youtube_1.jpeg", "/catalogue/images/youtube_2.jpeg", []string{"geek", "formal"}},
	}
}

// tags returns the tag names in tag_id order (1-based, AUTO_INCREMENT).
func tags() []string {
	return []string{"brown", "geek", "formal", "blue", "skin", "red", "action", "sport", "black", "magic", "green"}
}

// schema creates the tables in socksdb.
func schema() []string {
	return []string{
		"USE " + demoDB,
		`CREATE TABLE catalogue (
		id VARCHAR(40) NOT NULL,
		name VARCHAR(20),
		description VARCHAR(250),
		price DECIMAL(10,2),
		count INT,
		image_url_1 VARCHAR(40),
		image_url_2 VARCHAR(40),
		PRIMARY KEY (id)
	)`,
		`CREATE TABLE tag (
		tag_id MEDIUMINT NOT NULL AUTO_INCREMENT,
		name VARCHAR(20),
		PRIMARY KEY (tag_id)
	)`,
		`CREATE TABLE sock_tag (
		sock_id VARCHAR(40),
		tag_id MEDIUMINT NOT NULL,
		FOREIGN KEY (sock_id) REFERENCES catalogue (id),
		FOREIGN KEY (tag_id) REFERENCES tag (tag_id)
	)`,
	}
}

// seed creates the tables of socksdb (which must exist) and fills them,
// through SQL so the tables are exactly what a client would create.
func seed(ctx *sql.Context, e *sqle.Engine) error {
	stmts := schema()
	tagNames := tags()
	for _, t := range tagNames {
		stmts = append(stmts, fmt.Sprintf("INSERT INTO tag (name) VALUES (%s)", quote(t)))
	}
	tagID := make(map[string]int, len(tagNames))
	for i, t := range tagNames {
		tagID[t] = i + 1
	}
	for _, s := range socks() {
		stmts = append(stmts, fmt.Sprintf("INSERT INTO catalogue VALUES (%s, %s, %s, %s, %d, %s, %s)",
			quote(s.ID), quote(s.Name), quote(s.Description), s.Price, s.Count, quote(s.Image1), quote(s.Image2)))
		for _, t := range s.Tags {
			id, ok := tagID[t]
			if !ok {
				return fmt.Errorf("sock %s: unknown tag %q", s.Name, t)
			}
			stmts = append(stmts, fmt.Sprintf("INSERT INTO sock_tag VALUES (%s, %d)", quote(s.ID), id))
		}
	}
	for _, q := range stmts {
		if err := exec(ctx, e, q); err != nil {
			return err
		}
	}
	return nil
}

// exec runs one statement and drains its result.
func exec(ctx *sql.Context, e *sqle.Engine, q string) error {
	_, iter, _, err := e.Query(ctx, q)
	if err != nil {
		return fmt.Errorf("%s: %w", firstLine(q), err)
	}
	if _, err := sql.RowIterToRows(ctx, iter); err != nil {
		return fmt.Errorf("%s: %w", firstLine(q), err)
	}
	return nil
}

// quote makes a single-quoted SQL string literal.
func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `''`)
	return "'" + r.Replace(s) + "'"
}

func firstLine(q string) string {
	line, _, _ := strings.Cut(q, "\n")
	return line
}
