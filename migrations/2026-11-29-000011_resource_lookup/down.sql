DROP FUNCTION federation_resource_lookup(text, text, text, text);
