'use strict';
const assert = require('assert');
const { isLeapYear, daysInMonth, addDays } = require('../dates');

test('leap years every four years', () => {
  assert.strictEqual(isLeapYear(2024), true);
  assert.strictEqual(isLeapYear(2023), false);
});

test('century years are not leap years unless divisible by 400', () => {
  assert.strictEqual(isLeapYear(1900), false);
  assert.strictEqual(isLeapYear(2000), true);
});

test('days in February', () => {
  assert.strictEqual(daysInMonth(2024, 2), 29);
  assert.strictEqual(daysInMonth(2100, 2), 28);
});

test('adding days crosses months', () => {
  assert.strictEqual(addDays('2024-01-30', 3), '2024-02-02');
});
