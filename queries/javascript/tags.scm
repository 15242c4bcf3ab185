; JavaScript definitions. See queries/README.md for the capture conventions.
(function_declaration name: (identifier) @name) @definition.function
(generator_function_declaration name: (identifier) @name) @definition.function
(class_declaration name: (identifier) @name) @definition.class
(method_definition name: (property_identifier) @name) @definition.method
(field_definition property: (property_identifier) @name) @definition.field
(lexical_declaration
  (variable_declarator
    name: (identifier) @name
    value: [(arrow_function) (function_expression) (generator_function)])) @definition.function
(variable_declaration
  (variable_declarator
    name: (identifier) @name
    value: [(arrow_function) (function_expression) (generator_function)])) @definition.function
(program
  (lexical_declaration
    (variable_declarator name: (identifier) @name)) @definition.variable)
(program
  (export_statement
    (lexical_declaration
      (variable_declarator name: (identifier) @name)) @definition.variable))
(program
  (variable_declaration
    (variable_declarator name: (identifier) @name)) @definition.variable)
