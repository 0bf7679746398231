-- POST /api/purchase with a new transaction id on every request: "<nonce>-<thread>-<n>".
-- Requires common.lua above (tid, seq, P.nonce). P.buyers: user ids of buyers who each have
-- two levels of referrers; P.retailer, P.product: covered by a promotion, so points are
-- awarded as well as two commissions. Buyers are taken in a stride through the list (each
-- thread from its own offset); amounts vary from 1.00 to 250.00.

local n_buyers = #P.buyers

function request()
  local n = seq()
  local buyer = P.buyers[((n * 7919 + tid * 104729) % n_buyers) + 1]
  local cents = 100 + (n * 7727 + tid * 31) % 24901
  local body = string.format(
    '{"transactionId":"%s-%d-%d","userId":"%s","amount":"%d.%02d","retailerId":"%s",' ..
    '"productId":"%s"}',
    P.nonce, tid, n, buyer, math.floor(cents / 100), cents % 100, P.retailer, P.product)
  return wrk.format("POST", nil, nil, body)
end
