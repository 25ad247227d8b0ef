"""Validate JSON files against a JSON Schema with the jsonschema package.

Usage: validate_snapshot.py SCHEMA FILE...
Prints one line per violation. Exit status: 0 when every file is valid, 1 when
one is not, 3 when the jsonschema package is missing.
"""
import json
import sys

try:
    import jsonschema
except ImportError:
    print("the Python package jsonschema is missing: install python3-jsonschema")
    sys.exit(3)


def main():
    with open(sys.argv[1], encoding="utf-8") as schema_file:
        schema = json.load(schema_file)
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)

    invalid = False
    for path in sys.argv[2:]:
        with open(path, encoding="utf-8") as document_file:
            try:
                document = json.load(document_file)
            except json.JSONDecodeError as error:
                print(f"{path}: invalid JSON: {error}")
                invalid = True
                continue
        for error in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path))):
            location = "/".join(str(part) for part in error.absolute_path)
            print(f"{path}: at /{location}: {error.message}")
            invalid = True
    return 1 if invalid else 0


if __name__ == "__main__":
    sys.exit(main())
