# The two commands a fresh machine needs (each sets itself up; see scripts/dev).
.PHONY: demo test setup
demo:
	scripts/dev demo $(ARGS)
test:
	scripts/dev test $(ARGS)
setup:
	scripts/dev setup
