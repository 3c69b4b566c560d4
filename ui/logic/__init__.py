"""What the screens compute, without Qt: station status and health lights, accounts, recipe
edits, the dry run and review data. An import-linter contract keeps this package Qt-free, so it
is tested without a display and any front end could reuse it."""
