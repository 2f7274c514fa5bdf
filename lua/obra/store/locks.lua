-- obra.store.locks — named locks shared by every obra process on one
-- database (schema 9, the locks table): the merge queue serializes
-- integration fleet-wide with one (lua/obra/integrate.lua).  A lock has an
-- expiry, so the lock of a holder that died is free again once it expires;
-- a live holder renews it before then.  Methods on the store:
--
--   s:try_lock(name, holder, ttl) -> true | false
--       taken (or renewed) when it is free, expired, or already holder's; false: another holds it
--   s:renew_lock(name, holder, ttl) -> true | false    (false: holder lost it: it expired and was taken)
--   s:release_lock(name, holder) -> true | false       (false: holder did not hold it)
--   s:lock(name) -> {name, holder, acquired_at, expires_at} | nil
--
-- ttl: seconds from now by the store's clock (s:now(), store/leases.lua: the
-- database server's on PostgreSQL, so holders on machines whose clocks differ agree).
return function(methods, Q)
  function methods:try_lock(name, holder, ttl)
    local now = self:now()
    return self:exec(Q.lock_try, name, holder, now, now + ttl, now) > 0
  end

  function methods:renew_lock(name, holder, ttl)
    return self:exec(Q.lock_renew, self:now() + ttl, name, holder) > 0
  end

  function methods:release_lock(name, holder)
    return self:exec(Q.lock_release, name, holder) > 0
  end

  function methods:lock(name) return self:first(Q.lock_by_name, name) end
end
