"""The order service: a small HTTP/JSON service over PostgreSQL for users, products, orders and payments.

It runs on the hosts' system Python with only the standard library and psycopg2, because the hosts do not
have the toolkit's virtualenv. The release a build belongs to is described by `release.json` beside this
package in the unpacked release directory.
"""
