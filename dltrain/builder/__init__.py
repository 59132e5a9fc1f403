"""Recipe -> built objects (data, model, loss, optimizer, features): the only reader of the recipe below the verbs."""
